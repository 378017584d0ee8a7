"""FastAPI routers: ops (health, metrics), v1 models (control), predict (data plane), v2."""
