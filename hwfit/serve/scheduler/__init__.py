"""The scheduler: the `PlanDispatcher` (`dispatcher`), which checks each request once against the
model (`validate`, through `hwfit.models`), over a plan's pools (`pools`), each with a
dynamic batcher (`batcher`), routed by predicted completion (`router`), run by worker processes
(`workers`, tensors through shared memory in `shm`); a result cache, Prometheus metrics, event
loop lag, the default one-pool plan of `hwfit serve MODEL`, and `DirectDispatcher` (one runner,
no batching). Public names are exported by `hwfit.serve`."""
