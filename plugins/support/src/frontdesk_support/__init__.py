"""frontdesk-support: the `support` agent, customer support with step-by-step troubleshooting."""
