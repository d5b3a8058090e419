"""The web console (`naqd dashboard`, docs/dashboard.md): an ASGI app on Starlette, served
by uvicorn, that shows and acts on the whole cluster through the client's explorer and
actions (naqd/client/), the same code the CLI uses. Needs the `dashboard` extra."""
