"""The ceiling: a FastAPI POST endpoint that parses the same body and does nothing with it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/api/v1/bug-reports", status_code=201)
async def accept(report: dict[str, Any]) -> dict[str, str]:
    return {"request_id": str(report.get("id")), "status": "submitted"}
