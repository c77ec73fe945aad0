"""A TCP proxy that adds a delay to every chunk the upstream sends back
(the round trip to a distant key service), for benches/aws_untar.sh.

Usage: python3 delay_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS
Prints "listening PORT" once ready. Connections are handled concurrently
(asyncio): a delay holds up only its own connection.
"""

import asyncio
import sys


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    listen, upstream, delay_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay = delay_ms / 1000.0

    async def handle(creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pipe(creader, uwriter, 0), pipe(ureader, cwriter, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
