"""/api/docs: the OpenAPI document as a page, server-rendered (Swagger UI would load from
a CDN, and the UI works without the internet)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from web.deps import render

router = APIRouter(include_in_schema=False)


@router.get("/api/docs")
def api_docs(request: Request) -> Response:
    document: dict[str, Any] = request.app.openapi()
    endpoints = []
    for path, methods in sorted(document.get("paths", {}).items()):
        for method, op in methods.items():
            endpoints.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "parameters": [
                    {"name": p["name"], "in": p["in"], "required": p.get("required", False),
                     "description": p.get("description", ""),
                     "type": p.get("schema", {}).get("type", "")}
                    for p in op.get("parameters", [])
                ],
            })  # fmt: skip
    return render(request, "apidocs.html", title="API", endpoints=endpoints)
