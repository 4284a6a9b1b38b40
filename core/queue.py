"""Work on a queue: RQ jobs on Redis when GLIA_REDIS_URL is set, run by `glia worker` on any host.

A batch is one piece of work for one clinic (say, a year of superbills), split into jobs of a few
patients each. Redis holds ids and counts only: the batch's clinic id, kind and parameters (a
year), its job ids, and the patient ids finished or needing a fix. Names, birth dates and the
documents stay in the database, so neither Redis nor a worker's log holds PHI.

Jobs must be idempotent. A job that raises is retried with backoff (RQ's Retry); one whose worker
was killed is found abandoned by the next worker's maintenance and retried the same way. A retried
job redoes its whole part and must skip what the dead attempt finished; progress is kept in sets,
so counting a patient twice is impossible too.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis
from flask import Flask, current_app, render_template
from rq import Queue, Retry, Worker
from rq.job import Job, JobStatus

QUEUE = "glia"
KEEP = 7 * 24 * 3600  # a batch, its jobs and their results stay visible for a week
JOB_TIMEOUT = 3600
PREFIX = "glia:batch:"
OUTCOMES = ("issued", "existing", "problem")


class QueueUnavailable(RuntimeError):
    """GLIA_REDIS_URL is set but Redis does not answer."""


def configured(app: Flask | None = None) -> bool:
    return bool((app or current_app).config.get("GLIA_REDIS_URL"))


def connection(app: Flask | None = None) -> redis.Redis:
    """One client (and connection pool) per app; short timeouts, so a dead Redis is noticed quickly."""
    app = app or current_app
    conn = app.extensions.get("glia_redis")
    if conn is None:
        conn = redis.Redis.from_url(app.config["GLIA_REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
        app.extensions["glia_redis"] = conn
    return conn


def retry_intervals(app: Flask | None = None) -> list[int]:
    """Seconds before each retry of a failed job (GLIA_JOB_RETRY_INTERVALS, default 5,30,120)."""
    return (app or current_app).config["GLIA_JOB_RETRY_INTERVALS"]


def queue(app: Flask | None = None) -> Queue:
    return Queue(QUEUE, connection=connection(app))


def require(app: Flask | None = None) -> redis.Redis:
    """The connection, or QueueUnavailable with a message an operator can act on."""
    conn = connection(app)
    try:
        conn.ping()
    except redis.RedisError as exc:
        raise QueueUnavailable(f"Redis at GLIA_REDIS_URL does not answer ({type(exc).__name__}); "
                               "start it or unset GLIA_REDIS_URL to run batches in-process.") from None
    return conn


@dataclass
class Batch:
    """A batch as the jobs page and the CLI show it: counts and a state, never who."""

    id: str
    clinic_id: int
    kind: str
    params: dict
    total: int
    created_at: float
    jobs: list[str]
    done: int = 0        # finished patients: issued now or found issued before
    issued: int = 0      # of those, issued by this batch
    problems: int = 0    # patients whose record needs a fix first
    failed_jobs: int = 0
    state: str = "queued"  # queued, running, finished or failed

    @property
    def finished(self) -> bool:
        return self.state in ("finished", "failed")

    @property
    def label(self) -> str:
        return {"superbills": "Year superbills"}.get(self.kind, self.kind) + \
            "".join(f" {v}" for v in self.params.values())


def _key(batch_id: str, part: str = "") -> str:
    return PREFIX + batch_id + (":" + part if part else "")


def start(clinic_id: int, kind: str, params: dict, func: str, parts: list[list[int]],
          app: Flask | None = None) -> Batch:
    """Enqueue one job per part; each is called as ``func(batch_id, clinic_id, ids, **params)``."""
    conn = require(app)
    batch_id = uuid.uuid4().hex[:16]
    q = queue(app)
    intervals = retry_intervals(app)
    datas = [Queue.prepare_data(func, args=(batch_id, clinic_id, ids), kwargs=params, timeout=JOB_TIMEOUT,
                                result_ttl=KEEP, failure_ttl=KEEP, job_id=f"{batch_id}-{n}",
                                description=f"{kind} batch {batch_id} part {n}/{len(parts)}",
                                retry=Retry(max=len(intervals), interval=intervals))
             for n, ids in enumerate(parts, start=1)]
    now = time.time()
    total = sum(len(ids) for ids in parts)
    job_ids = [d.job_id for d in datas]
    with conn.pipeline() as pipe:
        pipe.hset(_key(batch_id), mapping={"clinic_id": clinic_id, "kind": kind, "total": total,
                                           "created_at": now, **{f"param:{k}": v for k, v in params.items()}})
        pipe.rpush(_key(batch_id, "jobs"), *job_ids)
        pipe.zadd(f"glia:clinic:{clinic_id}:batches", {batch_id: now})
        for part in ("", "jobs"):
            pipe.expire(_key(batch_id, part), KEEP)
        pipe.execute()
    q.enqueue_many(datas)
    return Batch(batch_id, clinic_id, kind, params, total, now, job_ids)


def record(batch_id: str, patient_id: int, outcome: str, app: Flask | None = None) -> None:
    """Note one patient's outcome (after its transaction committed); repeating it changes nothing."""
    assert outcome in OUTCOMES
    conn = connection(app)
    with conn.pipeline() as pipe:
        target = "problems" if outcome == "problem" else "done"
        pipe.sadd(_key(batch_id, target), patient_id)
        if outcome == "issued":
            pipe.sadd(_key(batch_id, "issued"), patient_id)
        for part in (target, "issued"):
            pipe.expire(_key(batch_id, part), KEEP)
        pipe.execute()


def members(batch_id: str, part: str, app: Flask | None = None) -> set[int]:
    """Patient ids of one outcome set: done, issued or problems."""
    return {int(v) for v in connection(app).smembers(_key(batch_id, part))}


def _state(statuses: list, done: int, total: int) -> str:
    if any(s == JobStatus.FAILED for s in statuses):
        return "failed"
    if all(s in (JobStatus.FINISHED, None) for s in statuses) and done >= total:
        return "finished"
    if done or any(s in (JobStatus.STARTED, JobStatus.SCHEDULED) for s in statuses):
        return "running"
    return "queued"


def load(batch_id: str, clinic_id: int, app: Flask | None = None) -> Batch | None:
    """The batch if it exists and belongs to this clinic (another clinic's is as good as missing)."""
    conn = connection(app)
    raw = {k.decode(): v.decode() for k, v in conn.hgetall(_key(batch_id)).items()}
    if not raw or int(raw["clinic_id"]) != clinic_id:
        return None
    job_ids = [j.decode() for j in conn.lrange(_key(batch_id, "jobs"), 0, -1)]
    with conn.pipeline() as pipe:
        for part in ("done", "issued", "problems"):
            pipe.scard(_key(batch_id, part))
        done, issued, problems = pipe.execute()
    statuses = [j.get_status(refresh=False) if j else None for j in Job.fetch_many(job_ids, connection=conn)]
    total = int(raw["total"])
    batch = Batch(batch_id, clinic_id, raw["kind"],
                  {k.removeprefix("param:"): v for k, v in raw.items() if k.startswith("param:")},
                  total, float(raw["created_at"]), job_ids, done, issued, problems,
                  failed_jobs=statuses.count(JobStatus.FAILED))
    batch.state = _state(statuses, done + problems, total)
    return batch


def for_clinic(clinic_id: int, limit: int = 20, app: Flask | None = None) -> list[Batch]:
    """This clinic's newest batches, newest first (expired ones drop out)."""
    conn = connection(app)
    key = f"glia:clinic:{clinic_id}:batches"
    conn.zremrangebyscore(key, 0, time.time() - KEEP)
    found = [load(b.decode(), clinic_id, app) for b in conn.zrevrange(key, 0, limit - 1)]
    return [b for b in found if b is not None]


class JobFailed(RuntimeError):
    """What a job reports instead of the original exception, whose text may hold PHI."""


class AppWorker(Worker):
    """An RQ worker whose jobs run inside the Glia app's context (current_app, hooks, sessions)."""

    app: Flask
    grace = 60  # RQ's fixed margin; `glia worker --abandon-after` sets it

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        """As RQ's, with our margin: how long a killed worker's job stays "started" before a retry."""
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = min(job.timeout - working_time, interval)
        return int(interval) + self.grace

    def perform_job(self, job, queue, execution):
        with self.app.app_context():
            return super().perform_job(job, queue, execution)


def init_app(app: Flask) -> None:
    """Redis down: sign-in (throttled through it) and the jobs page answer 503, never run unchecked."""
    app.register_error_handler(redis.RedisError, _redis_down)


def _redis_down(_err: redis.RedisError):
    message = ("This page needs the shared Redis server, which cannot be reached right now. "
               "Nothing was changed; try again in a minute, or ask your administrator.")
    return render_template("error.html", code=503, title="Service unavailable", message=message), 503
