"""Libraries shared by the Lambda handlers."""
