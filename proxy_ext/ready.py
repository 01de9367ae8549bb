"""GET /ready — placeholder to probe start-up; replaced below."""
from fastapi import APIRouter
router = APIRouter()

@router.get("/ready")
async def ready():
    return {"ready": True, "checks": {}}
