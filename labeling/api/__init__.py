"""The REST API under /api/v1/, in Nucleus's vocabulary; one module per resource."""
