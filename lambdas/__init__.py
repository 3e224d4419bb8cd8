"""Control-loop Lambda handlers and the small libraries they share."""
