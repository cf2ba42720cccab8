"""frontdesk-sales: the `sales` agent, a shop assistant that sells on WhatsApp."""
