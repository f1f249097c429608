"""What examples/scenarios/demo.toml serves, and the connector's shard function, for the tests."""

# examples/scenarios/demo.toml: execution → (dataset, rows), None for no results on Titan.
EXECUTIONS = {
    "0b6e5c1a-8f2d-4e7b-a1c3-5d9f7e2b4a60": ("products", 1200),
    "3c8d1f4e-2a6b-4f9c-8d7e-1b5a3c9f0e21": ("products", 5000),
    "5a2e9b7c-1d4f-4a8e-b6c2-9f3d7e1a5b42": ("products", 800),
    "9e4f2a7b-6c1d-4b3e-8a5f-2d7c9b1e4f63": None,  # failed on Titan
    "4f7b3d9e-5a2c-4e1f-b8d6-7a9c1e3f5b84": ("news_headlines", 2000),
    "8a1c5e3f-9d7b-4a2e-8c6f-3e5a7c9d1b05": ("news_headlines", 450),
    "c7e2a9f4-3b8d-4f1a-a6c5-2e9b7d4f1a86": ("jobs", 600),
    "e1d4b8a3-6f2c-4d9e-b7a1-5c3e8f2d6b97": None,  # cancelled on Titan
}
ROWS = {"products": 7000, "news_headlines": 2450, "jobs": 600}


def shard_of(execution_id: str, count: int) -> int:
    """The connector's documented split: 64-bit FNV-1a of the execution id, modulo N."""
    h = 0xCBF29CE484222325
    for b in execution_id.encode():
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return h % count


def owned(count: int) -> dict:
    """{shard index: the execution ids it owns} over `count` shards."""
    return {i: {e for e in EXECUTIONS if shard_of(e, count) == i} for i in range(count)}


def partial(count: int) -> set:
    """Shards that meet an execution without results: the connector exits 3 there on first sight."""
    return {shard_of(e, count) for e, v in EXECUTIONS.items() if v is None}
