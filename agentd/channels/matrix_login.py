"""Log the agent's Matrix account in with a password: the access token the channel uses."""

from __future__ import annotations

import asyncio

from agentd.errors import UserError


def login(homeserver: str, user_id: str, password: str, *, device_name: str = "agentd") -> str:
    """The access token of a new device of ``user_id`` (the password is not kept anywhere)."""
    try:
        from nio import AsyncClient, AsyncClientConfig, LoginError
    except ImportError:
        raise UserError("the Matrix channel needs matrix-nio: pip install 'agentd[matrix]'") from None

    async def run() -> str:
        client = AsyncClient(homeserver, user_id, config=AsyncClientConfig(max_timeouts=0, request_timeout=30))
        try:
            resp = await client.login(password, device_name=device_name)
        except (TimeoutError, OSError) as e:
            raise UserError(f"cannot reach {homeserver}: {e or type(e).__name__}") from None
        finally:
            await client.close()
        if isinstance(resp, LoginError):
            raise UserError(f"{homeserver} refused the login of {user_id}: {resp.message}")
        return str(resp.access_token)

    return asyncio.run(run())
