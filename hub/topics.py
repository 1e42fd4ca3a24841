"""Topic administration: create the topics the hub reads and writes, with the configured partitions."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int) -> list[str]:
    """Create the missing topics; returns the names it created. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(name, partitions, 1) for name in missing])
            except TopicAlreadyExistsError:
                log.info("topics created concurrently by another process: %s", missing)
        return missing
    finally:
        await admin.close()


_BLOCKS = [struct.Struct(f"<{n}I").unpack_from for n in range(64)]


def murmur2(data: bytes) -> int:
    """The Java client's murmur2 (as `aiokafka.partitioner.murmur2`), with fewer Python operations."""
    length = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    blocks = length >> 2
    for k in _BLOCKS[blocks](data) if blocks < 64 else struct.unpack_from(f"<{blocks}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & 3
    if tail:
        base = length & ~3
        if tail >= 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java client, aiokafka) gives a record key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
