"""Heartbeat and cron schedules read from the home's Markdown, run on APScheduler."""
