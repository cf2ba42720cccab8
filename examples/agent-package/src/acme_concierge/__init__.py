"""A hotel concierge agent for frontdesk."""
