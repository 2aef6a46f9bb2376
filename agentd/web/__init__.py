"""The local web app the daemon serves: chat, timeline, cache and cost, mind, approvals, schedule."""
