"""The pytest plugin (rrqkit.testing.pytest_plugin, entry point pytest11), run with pytester:
rrq_fake / rrq_inline with an overridden rrq_registry, rrq_live's skips, and a real live run
against this repository's orchestrator (RRQ_ORCHESTRATOR="node <repo>/bin/rrq.js")."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from rrqkit.testing.live import LiveRrqUnavailable, find_orchestrator, toml_text

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[3]
RRQ_JS = REPO / "bin" / "rrq.js"

HANDLERS = """
from rrqkit import Registry, NonRetryableError

registry = Registry()


@registry.handler("add")
async def add(request):
    return request.params["a"] + request.params["b"]


@registry.handler("refuse")
def refuse(request):
    raise NonRetryableError("no")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(handlers=HANDLERS)
    pytester.makeconftest(
        """
        import pytest
        from handlers import registry

        @pytest.fixture
        def rrq_registry():
            return registry
        """
    )
    return pytester


def test_fake_and_inline_fixtures_use_the_overridden_registry(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_jobs="""
        async def test_inline(rrq_inline):
            job_id = await rrq_inline.enqueue("add", {"a": 1, "b": 2})
            assert (await rrq_inline.get_job_status(job_id)).result == 3

        async def test_fake(rrq_fake):
            job_id = await rrq_fake.enqueue("refuse", max_retries=3)
            assert [job.id for job in rrq_fake.jobs_for("refuse")] == [job_id]
            await rrq_fake.drain()
            job = rrq_fake.job(job_id)
            assert (job.status, job.attempts, job.error_type) == ("FAILED", 1, "non_retryable")

        def test_default_registry_is_replaced(rrq_registry):
            assert sorted(rrq_registry.names) == ["add", "refuse"]
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=3)


def test_rrq_live_skips_with_a_reason(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RRQ_ORCHESTRATOR", raising=False)
    empty = project.mkdir("empty-path")
    monkeypatch.setenv("PATH", str(empty))  # no rrq, no redis-server
    project.makepyfile(
        test_live_unconfigured="""
        def test_without_config(rrq_live):
            pass
        """,
        test_live_configured="""
        import pytest

        @pytest.fixture
        def rrq_live_config():
            return {"cmd": ["python", "-m", "rrqkit.cli", "--settings", "handlers:registry"]}

        def test_without_orchestrator(rrq_live):
            pass
        """,
    )
    result = project.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*rrq_live: no rrqkit orchestrator: set RRQ_ORCHESTRATOR*",
            "*override the rrq_live_config fixture*",
        ]
    )


def test_find_orchestrator_and_toml() -> None:
    assert find_orchestrator({"RRQ_ORCHESTRATOR": "node '/a b/rrq.js'"}) == ["node", "/a b/rrq.js"]
    if shutil.which("rrq") is None:
        with pytest.raises(LiveRrqUnavailable, match="RRQ_ORCHESTRATOR"):
            find_orchestrator({})
    text = toml_text(
        "redis://127.0.0.1:1/0",
        {"cmd": ["py", "-m", "x"], "rrq": {"default_max_retries": 2}},
    )
    assert 'cmd = ["py", "-m", "x"]' in text
    assert "default_max_retries = 2" in text
    assert "[rrq.runners.python]" in text


@pytest.mark.skipif(
    shutil.which("node") is None
    or shutil.which("redis-server") is None
    or not (REPO / "dist").is_dir(),
    reason="needs node, redis-server and the built orchestrator (npm run build)",
)
def test_rrq_live_runs_a_job(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRQ_ORCHESTRATOR", f"node {RRQ_JS}")
    project.makepyfile(
        test_plugin_live_job=textwrap.dedent(
            f"""
            import pytest

            @pytest.fixture
            def rrq_live_config():
                return {{
                    "cmd": [{sys.executable!r}, "-m", "rrqkit.cli", "--settings",
                            "handlers:registry"],
                    "runner_options": {{"transport": "stdio"}},
                }}

            async def test_live(rrq_live):
                assert rrq_live.redis_url.startswith("redis://127.0.0.1:")
                producer = rrq_live.producer
                job_id = await producer.enqueue("add", {{"a": 20, "b": 22}})
                done = await producer.wait_for_completion(job_id, timeout_seconds=60)
                await producer.close()
                assert done is not None, rrq_live.worker_log()
                assert (done.status, done.result) == ("COMPLETED", 42)
            """
        )
    )
    result = project.runpytest("-s")
    result.assert_outcomes(passed=1)
