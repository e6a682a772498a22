#!/usr/bin/env python3
"""A TCP gate in front of the TSDB for fault runs: forwards connections to
--target while the file --down-file does not exist; while it exists, new
connections are refused (accepted and closed at once) and open ones are cut.
Lets a script take "the TSDB" down without stopping a server others use."""
import argparse
import asyncio
import os


async def pipe(r, w, down):
    try:
        while not os.path.exists(down):
            data = await asyncio.wait_for(r.read(65536), timeout=0.5)
            if not data:
                break
            w.write(data)
            await w.drain()
    except asyncio.TimeoutError:
        await pipe(r, w, down)
        return
    except (ConnectionError, OSError):
        pass
    try:
        w.close()
    except OSError:
        pass


async def handle(cr, cw, target, down):
    if os.path.exists(down):
        cw.close()
        return
    host, port = target.rsplit(":", 1)
    try:
        sr, sw = await asyncio.open_connection(host, int(port))
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, sw, down), pipe(sr, cw, down))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--down-file", required=True)
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    server = await asyncio.start_server(lambda r, w: handle(r, w, a.target, a.down_file), host, int(port))
    async with server:
        await server.serve_forever()


asyncio.run(main())
