"""The worker role: runs durable jobs (training) from the database queue, each in a child process, and the
periodic tasks (the retraining schedule). `shoprec worker` runs one; `shoprec serve` on SQLite may start one
beside the API with `worker_process(settings)`.

    stop = threading.Event()
    Worker(settings).run(stop)             # until stop is set
    Worker(settings).run_once()            # one job if there is one: True when it ran one
"""

from shoprec.worker.runner import DEFAULT_HANDLERS, Handler, Periodic, Worker, default_worker_id, worker_process

__all__ = ["DEFAULT_HANDLERS", "Handler", "Periodic", "Worker", "default_worker_id", "worker_process"]
