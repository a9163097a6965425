"""Prometheus metrics for recording, read from ``camera_health`` (so any process that can
read the database — the web process — can export them).

    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry()
    register_recording_metrics(registry, runtime.db)
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select

from pscs.cameras.models import Camera
from pscs.db.engine import Database
from pscs.recording.models import Alert, CameraHealth, CameraState

STATES = tuple(CameraState)


class RecordingCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        with self.db.session() as s:
            rows = s.execute(select(CameraHealth, Camera.name).join(Camera, Camera.id == CameraHealth.camera_id)).all()
            open_alerts = s.execute(
                select(Alert.kind, func.count()).where(Alert.cleared_at.is_(None)).group_by(Alert.kind)
            ).all()
        labels = ["camera_id", "camera"]
        up = GaugeMetricFamily("pscs_camera_up", "1 if the camera is being recorded now", labels=labels)
        state = GaugeMetricFamily(
            "pscs_camera_state",
            "The camera's recorder state (1 for the current one)",
            labels=[*labels, "state"],
        )
        fps = GaugeMetricFamily("pscs_camera_fps", "Frames per second received", labels=labels)
        bitrate = GaugeMetricFamily("pscs_camera_bitrate_bits_per_second", "Video bit rate received", labels=labels)
        last_frame = GaugeMetricFamily(
            "pscs_camera_last_frame_timestamp_seconds",
            "When the last frame was received (Unix time)",
            labels=labels,
        )
        frames = CounterMetricFamily("pscs_camera_frames", "Frames recorded", labels=labels)
        nbytes = CounterMetricFamily("pscs_camera_received_bytes", "Video bytes recorded", labels=labels)
        dropped = CounterMetricFamily(
            "pscs_camera_dropped_packets",
            "RTP packets lost on the way, and pictures dropped before a run's first keyframe",
            labels=labels,
        )
        discontinuities = CounterMetricFamily(
            "pscs_camera_timestamp_discontinuities", "Jumps in the camera's media timestamps", labels=labels
        )
        reconnects = CounterMetricFamily("pscs_camera_connections", "Successful (re)connections", labels=labels)
        segments = CounterMetricFamily("pscs_camera_segments_written", "Segments written", labels=labels)
        for health, name in rows:
            values = [str(health.camera_id), name]
            up.add_metric(values, 1.0 if health.state == CameraState.ONLINE else 0.0)
            for candidate in STATES:
                state.add_metric([*values, candidate], 1.0 if health.state == candidate else 0.0)
            fps.add_metric(values, health.fps or 0.0)
            bitrate.add_metric(values, health.bitrate_bps or 0.0)
            if health.last_frame_ms is not None:
                last_frame.add_metric(values, health.last_frame_ms / 1000)
            frames.add_metric(values, health.frames_total or 0)
            nbytes.add_metric(values, health.bytes_total or 0)
            dropped.add_metric(values, health.dropped_packets or 0)
            discontinuities.add_metric(values, health.timestamp_discontinuities or 0)
            reconnects.add_metric(values, health.reconnects or 0)
            segments.add_metric(values, health.segments_written or 0)
        alerts = GaugeMetricFamily("pscs_open_alerts", "Open alerts by kind", labels=["kind"])
        for kind, count in open_alerts:
            alerts.add_metric([kind], count)
        yield from (
            up,
            state,
            fps,
            bitrate,
            last_frame,
            frames,
            nbytes,
            dropped,
            discontinuities,
            reconnects,
            segments,
            alerts,
        )


def register_recording_metrics(registry: CollectorRegistry, db: Database) -> RecordingCollector:
    collector = RecordingCollector(db)
    registry.register(collector)
    return collector
