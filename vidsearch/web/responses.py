"""One-line JSON error responses, shared by the app and its routes."""
from __future__ import annotations

from fastapi.responses import JSONResponse


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())[:500]}, status_code=status)
