"""One MGET with the command packed in a single join.

redis-py packs every argument separately (encode, length, a growing buffer): ~3 µs per key, which is more than
the rest of the classification of a number. Packing the RESP array with one ``bytes.join`` costs ~0.3 µs per key.
The command is sent and its reply read on a connection of the client's own pool (its parser, hiredis when
installed); a connection interrupted mid-command (error or cancellation) is dropped so that no stale reply is
ever read by the next user.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

_MGET = b"$4\r\nMGET\r\n"


def pack_mget(keys: Sequence[bytes]) -> bytes:
    parts = [b"*%d\r\n" % (len(keys) + 1), _MGET]
    parts.extend(b"$%d\r\n%s\r\n" % (len(key), key) for key in keys)
    return b"".join(parts)


async def mget(redis: aioredis.Redis, keys: Sequence[bytes]) -> list[bytes | None]:
    """``MGET keys`` (values as bytes, None for missing keys)."""
    if not keys:
        return []
    packed = pack_mget(keys)
    pool = redis.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(packed)
        reply = await connection.read_response()
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
    if isinstance(reply, Exception):
        raise reply
    return list(reply)
