"""The drawing page, served with the app and loading nothing from elsewhere."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@lru_cache
def _page() -> str:
    return (files("mnist_serving") / "static" / "index.html").read_text("utf-8")


@router.get("/", response_class=HTMLResponse, summary="The drawing page")
async def page() -> HTMLResponse:
    """A canvas to draw a digit on and see the model's answer."""
    return HTMLResponse(_page(), headers={"Content-Security-Policy": CSP})
