"""Prometheus metrics, read from the database at scrape time so that every process
(web, recorder workers, CLI) is reflected wherever /metrics is served."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from pscs.audit.log import now_us
from pscs.audit.models import AuditHead
from pscs.auth.models import User
from pscs.recording.metrics import register_recording_metrics
from pscs.runtime import Runtime


class CoreCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.runtime.db.session() as s:
            head = s.get(AuditHead, 1)
            active_users = s.scalar(select(func.count()).select_from(User).where(User.disabled.is_(False)))
        yield GaugeMetricFamily("pscs_audit_events", "Events in the audit trail", value=head.seq if head else 0)
        age = (now_us() - head.checkpoint_ts_us) / 1e6 if head else 0.0
        yield GaugeMetricFamily("pscs_audit_checkpoint_age_seconds", "Time since the last signed checkpoint", value=age)
        yield GaugeMetricFamily("pscs_users_active", "Enabled user accounts", value=active_users or 0)


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CoreCollector(runtime))
    register_recording_metrics(registry, runtime.db)
    return registry
