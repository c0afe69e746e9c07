"""Async predictions: accepted with 202, queued in a store (memory, or Redis shared by
every replica), run on the same stages and slots as synchronous requests, read and
cancelled at /predictions/{id}, their events sent to webhooks.

    predictions.py       the dispatcher, the heartbeat and the routes' work (http/async_work.py's shape)
    store.py             Store, MemoryStore, Record, the statuses
    spooled.py           a queued body on disk (memory store)
    redis_store.py       RedisStore (imported only with server.async_store: redis://…)
    webhook_options.py   what a request says about its webhook
    webhook_targets.py   where a webhook may go (public addresses, or server.webhook_allowed_hosts)
    webhooks.py          signed deliveries (imported only with a webhook secret)
"""
