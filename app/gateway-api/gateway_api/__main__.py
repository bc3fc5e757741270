"""``python -m gateway_api``: the public listener and the admin listener in one process."""

import asyncio

import uvicorn

from edgelib.runner import enter_workspace
from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.main import create_app, create_public_app


async def serve(settings: Settings) -> None:
    gateway = Gateway(settings)
    admin = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, gateway),
            host=settings.admin_host,
            port=settings.admin_port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    public = uvicorn.Server(
        uvicorn.Config(
            create_public_app(gateway),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
            http="httptools",
            lifespan="off",
            date_header=False,  # the upstream's Date header passes through
            # The gateway is the edge: X-Forwarded-* from clients is data, not truth,
            # unless a load balancer in front is named in GATEWAY_TRUSTED_PROXIES.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
        )
    )
    admin_task = asyncio.create_task(admin.serve())
    while not admin.started:
        if admin_task.done():
            await admin_task
            raise SystemExit("gateway admin listener failed to start")
        await asyncio.sleep(0.05)
    public_task = asyncio.create_task(public.serve())
    await asyncio.wait({admin_task, public_task}, return_when=asyncio.FIRST_COMPLETED)
    admin.should_exit = public.should_exit = True
    await asyncio.gather(admin_task, public_task, return_exceptions=True)


def main() -> None:
    enter_workspace()
    asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
