"""ktest lava: job definitions against LAVA's own schema, and job logs read
back, on logs recorded from real lava-run runs here (tests/fixtures/lava/):
ringtest-2x3.log is `ktest lava job bench ringtest --variants virtio_ring_0_9
virtio_ring_avail_cache --runs 3` run with `ktest lava run` under TCG;
boot-exits-3.log is `ktest lava job boot --name exits-3 -- sh -c 'echo
counted=7; exit 3'`."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ktest import bench
from ktest.lava import device, jobdef, local, results, submit
from ktest.lava.common import LavaError, validate
from ktest.qemu import initramfs as irfs
from tests.conftest import FIXTURES, REPO

LOGS = FIXTURES / "lava"
RINGTEST_LOG = LOGS / "ringtest-2x3.log"
BOOT_LOG = LOGS / "boot-exits-3.log"
KERNEL = Path("/bin/true")   # any file: the schema checks URLs and checksums, not kernels

needs_lava = pytest.mark.skipif(shutil.which("lava-run") is None,
                                reason="lava-dispatcher is not installed (scripts/setup-host installs it)")


def _ktest(*args, env=None):
    import os

    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "ktest", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=e)


def _write(tmp_path, steps, url=None, kind="bench"):
    img = irfs.build(jobdef.SHELL_SCRIPT, [], {"bin/ktest-lava-case": jobdef._script("ktest-lava-case",
                                                                                     jobdef.CASE_SCRIPT)})
    return jobdef.write(tmp_path / "job", "test job", KERNEL, img, steps, url, {"kind": kind}, 120, check=False)


def _ringtest_spec():
    return bench.BenchSpec(program="ringtest", variants=["virtio_ring_0_9", "virtio_ring_avail_cache"], runs=3)


# --- the job definition ----------------------------------------------------------------------------------

@needs_lava
def test_bench_job_is_valid_for_lava_one_case_per_run(tmp_path, ktest_home):
    lj = _write(tmp_path, jobdef.bench_steps(_ringtest_spec()))
    validate(lj.definition)
    doc = yaml.safe_load(lj.definition.read_text())
    steps = doc["actions"][2]["test"]["definitions"][0]["repository"]["run"]["steps"]
    # ktest bench's interleaved order, each run one case wrapped by ktest-run.
    assert [s.split()[1] for s in steps] == [
        "virtio_ring_0_9-run1", "virtio_ring_avail_cache-run1", "virtio_ring_0_9-run2",
        "virtio_ring_avail_cache-run2", "virtio_ring_0_9-run3", "virtio_ring_avail_cache-run3"]
    assert all(s.split()[2] == "/ktest/bin/ktest-run" for s in steps)
    assert "--run-cycles 1000000" in steps[0]
    images = doc["actions"][0]["deploy"]["images"]
    art = (tmp_path / "job" / "artifacts").resolve()
    assert images["kernel"]["url"] == (art / "bzImage").as_uri()
    assert images["ramdisk"]["url"] == (art / "initramfs.cpio").as_uri()
    assert images["ramdisk"]["overlays"] == {"lava": True} and images["ramdisk"]["format"] == "cpio.newc"
    assert images["kernel"]["sha256sum"] == __import__("hashlib").sha256(KERNEL.read_bytes()).hexdigest()
    assert doc["actions"][1]["boot"]["prompts"] == [jobdef.PROMPT]
    manifest = json.loads((tmp_path / "job" / "ktest-job.json").read_text())
    assert manifest["local"] is True and manifest["cases"][0] == "virtio_ring_0_9-run1"


@needs_lava
def test_boot_job_is_valid_for_lava(tmp_path, ktest_home):
    lj = _write(tmp_path, [("uname", ["uname", "-r"]), ("odd-name", ["sh", "-c", "echo 'a b'; exit 3"])],
                kind="boot")
    validate(lj.definition)
    steps = yaml.safe_load(lj.definition.read_text())["actions"][2]["test"]["definitions"][0]["repository"][
        "run"]["steps"]
    # Quoted for the guest shell: lava-test-case --shell mis-evaluates unquoted commands, so no --shell.
    assert steps == [f"{jobdef.CASE_BIN} uname uname -r",
                     f"{jobdef.CASE_BIN} odd-name sh -c 'echo '\"'\"'a b'\"'\"'; exit 3'"]


@needs_lava
def test_boot_command_writes_a_valid_job_and_refuses_an_empty_one(tmp_path, ktest_home):
    r = _ktest("lava", "job", "boot", "--modules", "none", "--name", "hello", "--out", tmp_path / "j", "--",
               "echo", "hello world")
    assert r.returncode == 0, r.stderr
    assert "valid against LAVA's job schema" in r.stderr and r.stdout.strip() == str(tmp_path / "j" / "job.yaml")
    doc = yaml.safe_load((tmp_path / "j" / "job.yaml").read_text())
    assert doc["actions"][2]["test"]["definitions"][0]["repository"]["run"]["steps"] == [
        f"{jobdef.CASE_BIN} hello echo 'hello world'"]
    empty = _ktest("lava", "job", "boot", "--modules", "none", "--out", tmp_path / "e")
    assert empty.returncode == 1 and "nothing for the job to run" in empty.stderr


@needs_lava
def test_artifacts_url_job_is_valid_and_deploys_from_the_lab(tmp_path, ktest_home):
    lj = _write(tmp_path, jobdef.bench_steps(_ringtest_spec()), url="https://files.example.org/ktest/run1/")
    validate(lj.definition)
    images = yaml.safe_load(lj.definition.read_text())["actions"][0]["deploy"]["images"]
    assert images["kernel"]["url"] == "https://files.example.org/ktest/run1/bzImage"
    assert images["ramdisk"]["url"] == "https://files.example.org/ktest/run1/initramfs.cpio"
    # What to upload is laid out under DIR/artifacts with those names.
    assert sorted(p.name for p in (lj.directory / "artifacts").iterdir()) == ["bzImage", "initramfs.cpio"]
    assert lj.manifest["local"] is False
    with pytest.raises(LavaError, match="fetch by http:// or https://"):
        _write(tmp_path / "x", [("a", ["true"])], url="/srv/www/ktest")


@needs_lava
def test_schema_check_names_the_bad_key(tmp_path):
    bad = tmp_path / "job.yaml"
    doc = jobdef.definition("x", {"kernel": "file:///k", "ramdisk": "file:///r"}, {"kernel": "0", "ramdisk": "0"},
                            [("a", ["true"])], boot_s=60, test_s=60)
    doc["actions"][1]["boot"]["methodd"] = "qemu"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(LavaError, match=r"not a valid LAVA job: .*methodd"):
        validate(bad)


def test_case_names_are_lava_safe():
    assert jobdef.case_name("virtio_ring_0_9-run1") == "virtio_ring_0_9-run1"
    assert jobdef.case_name("/usr/bin/my test!") == "usr-bin-my-test"
    with pytest.raises(LavaError):
        jobdef.case_name("!!!")


def test_initramfs_carries_the_case_runner_and_leaves_a_shell(tmp_path, ktest_home):
    img = irfs.build(jobdef.SHELL_SCRIPT, [], {"bin/ktest-lava-case": jobdef._script("ktest-lava-case",
                                                                                     jobdef.CASE_SCRIPT)})
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "ktest/cmd", "ktest/bin/ktest-lava-case"], cwd=out,
                   stdin=open(img.path, "rb"), check=True, timeout=60)
    assert (out / "ktest/cmd").read_text() == jobdef.SHELL_SCRIPT
    assert (out / "ktest/bin/ktest-lava-case").stat().st_mode & 0o111


def test_case_runner_reports_status_output_and_wall_time(tmp_path):
    """The guest's ktest-lava-case, run here with a stand-in lava-test-case."""
    runner = tmp_path / "ktest-lava-case"
    runner.write_text(jobdef.CASE_SCRIPT)
    runner.chmod(0o755)
    fake = tmp_path / "lava-test-case"
    fake.write_text('#!/bin/sh\necho "LAVA-TEST-CASE $*"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    ok = subprocess.run([str(runner), "r1", "sh", "-c",
                         "echo avail=3; echo 'KTEST-RUN variant=v run=1 status=0 wall_ns=1500000000 utime_us=1'"],
                        capture_output=True, text=True, env=env, timeout=30)
    assert ok.stdout.splitlines() == [
        "KTEST-CASE-BEGIN r1", "avail=3", "KTEST-RUN variant=v run=1 status=0 wall_ns=1500000000 utime_us=1",
        "KTEST-CASE-END r1 status=0",
        "LAVA-TEST-CASE r1 --result pass --measurement 1.500000000 --units seconds"]
    bad = subprocess.run([str(runner), "boom", "sh", "-c", "echo oops >&2; exit 3"], capture_output=True,
                         text=True, env=env, timeout=30)
    assert bad.stdout.splitlines() == ["KTEST-CASE-BEGIN boom", "oops", "KTEST-CASE-END boom status=3",
                                       "LAVA-TEST-CASE boom --result fail"]


# --- the device ------------------------------------------------------------------------------------------

def test_device_follows_lavas_qemu_template():
    ctx = {"arch": "amd64", "memory": 1024, "netdevice": "user", "extra_options": ["-smp 2", "-no-reboot"]}
    tcg = device.config(ctx, "tcg")["actions"]["boot"]["methods"]["qemu"]["parameters"]
    assert tcg["options"][0] == "-cpu max" and "-enable-kvm" not in tcg["options"]
    assert "-m 1024" in tcg["options"] and tcg["extra"] == ["-smp 2", "-no-reboot"]
    assert "-net user" in " ".join(tcg["options"])
    kvm = device.config(ctx, "kvm")["actions"]["boot"]["methods"]["qemu"]["parameters"]
    assert kvm["options"][:2] == ["-cpu host", "-enable-kvm"]


# --- reading a job log back ------------------------------------------------------------------------------

def _guest_runs(log: Path) -> list[dict]:
    """The KTEST-RUN lines the guest printed, read straight from the raw log."""
    return [dict(w.split("=", 1) for w in m.split()) for m in
            re.findall(r'"msg": "KTEST-RUN (.*?)"\}', log.read_text())]


def test_ringtest_log_gives_the_guests_runs_as_records():
    res = results.parse(RINGTEST_LOG, expected=["patched-modules"] + [c for c, _ in
                                                                      jobdef.bench_steps(_ringtest_spec())],
                        patched=["virtio_ring", "virtio_net"])
    assert res.problems() == []
    assert res.job_result == "pass"
    printed = _guest_runs(RINGTEST_LOG)
    assert len(printed) == 6 == len(res.records)
    for rec, p in zip(res.records, printed):
        assert (rec.variant, rec.run, rec.status) == (p["variant"], int(p["run"]), int(p["status"]))
        assert rec.wall_s == int(p["wall_ns"]) / 1e9 and rec.user_s == int(p["utime_us"]) / 1e6
        assert rec.nivcsw == int(p["nivcsw"]) and rec.maxrss_kb == int(p["maxrss_kb"])
        assert res.case(f"{rec.variant}-run{rec.run}").measurement == pytest.approx(rec.wall_s, abs=1e-9)
    by = {r.variant: r.counters for r in res.records}
    assert by["virtio_ring_0_9"]["avail_ring.entries_stored"] == 1_000_000
    assert by["virtio_ring_avail_cache"]["avail_ring.entries_stored"] == 256
    assert by["virtio_ring_avail_cache"]["avail_ring.stores_skipped"] == 999_744
    assert res.console.out_of_tree() == ["virtio_ring", "virtio_net"]


def test_ringtest_log_summary_is_ktest_benchs(tmp_path):
    res = results.parse(RINGTEST_LOG)
    outcome = results.outcome(res, tmp_path, {"title": "t"}, ["virtio_ring_0_9", "virtio_ring_avail_cache"])
    doc = bench.read_results(outcome.results)
    assert [(s["variant"], s["runs"], s["failed"]) for s in doc["summary"]] == [
        ("virtio_ring_0_9", 3, 0), ("virtio_ring_avail_cache", 3, 0)]
    assert doc["summary"][0]["median"] == 40.84734135
    assert bench.records_of(doc) == res.records


def test_lab_raw_log_reads_the_same(tmp_path):
    """lavacli jobs logs --raw writes each entry as "- " + a YAML flow mapping."""
    lab = tmp_path / "lab.log"
    lines = []
    for raw in RINGTEST_LOG.read_text().splitlines()[1:]:
        entry = yaml.safe_load(raw)
        lines.append("- " + yaml.dump(entry, default_flow_style=True, default_style='"', width=10 ** 6)[:-1])
    lab.write_text("\n".join(lines) + "\n")
    assert results.parse(lab).records == results.parse(RINGTEST_LOG).records


def test_failing_command_is_reported_failed_by_name():
    res = results.parse(BOOT_LOG, expected=["patched-modules", "exits-3"], patched=["virtio_ring", "virtio_net"])
    c = res.case("exits-3")
    assert (c.result, c.status, c.output) == ("fail", 3, ["counted=7"])
    assert res.case("patched-modules").result == "pass"
    assert res.problems() == ["test case exits-3 failed (exit status 3): counted=7"]
    assert res.records == []


def test_missing_case_kernel_report_and_early_end_are_problems(tmp_path):
    lines = BOOT_LOG.read_text().splitlines()
    end = next(i for i, x in enumerate(lines) if "KTEST-CASE-BEGIN exits-3" in x)
    warn = ('{"dt": "2026-11-30T04:53:00", "lvl": "target", '
            '"msg": "[   12.5] WARNING: CPU: 1 PID: 7 at drivers/virtio/virtio_ring.c:123 vring_x+0x1/0x2"}')
    cut = tmp_path / "cut.log"
    cut.write_text("\n".join(lines[:end] + [warn]) + "\n")
    problems = results.parse(cut, expected=["patched-modules", "exits-3"]).problems()
    assert "test case exits-3 did not run" in problems
    assert any(p.startswith("the guest kernel reported a warn: WARNING: CPU: 1") for p in problems)
    assert problems[-1] == "the log ends before LAVA's job verdict"


def test_measurement_that_is_not_the_runs_wall_time_is_refused(tmp_path):
    bad = tmp_path / "bad.log"
    bad.write_text(RINGTEST_LOG.read_text().replace('"measurement": ! "18.42920084"',
                                                    '"measurement": ! "18.5"'))
    with pytest.raises(LavaError, match="virtio_ring_avail_cache-run1: LAVA's measurement 18.5 s"):
        results.parse(bad)


def test_not_a_log_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.log"
    junk.write_text("hello\n")
    with pytest.raises(LavaError, match="no LAVA log lines"):
        results.parse(junk)
    junk.write_text('{"dt": "x", "lvl": [\n')
    with pytest.raises(LavaError, match=r"junk.log:1: not a LAVA log line"):
        results.parse(junk)


def test_results_command_feeds_bench_compare(tmp_path):
    r = _ktest("lava", "results", RINGTEST_LOG, "--out", tmp_path / "lab")
    assert r.returncode == 0, r.stderr
    assert "virtio_ring_avail_cache" in r.stdout and "40.847" in r.stdout
    cmp = _ktest("bench", "compare", tmp_path / "lab" / "results.json", tmp_path / "lab" / "results.json")
    assert cmp.returncode == 0 and "1.000" in cmp.stdout
    failed = _ktest("lava", "results", BOOT_LOG)
    assert failed.returncode == 1
    assert "test case exits-3 failed (exit status 3)" in failed.stderr
    assert "Traceback" not in failed.stderr


# --- running here, and sending to a lab ------------------------------------------------------------------

def test_lava_run_argv_and_refusals(tmp_path, monkeypatch, ktest_home):
    if shutil.which("lava-run"):
        argv = local.lava_run_argv(Path("/j/job.yaml"), Path("/j/d.yaml"), Path("/j/out"), 42)
        assert argv[1:] == ["--job-id", "42", "--output-dir", "/j/out", "--device", "/j/d.yaml", "/j/job.yaml"]
    with pytest.raises(LavaError, match="no job.yaml and ktest-job.json"):
        local.run_local(tmp_path)
    lab = _write(tmp_path, [("a", ["true"])], url="https://files.example.org/x")
    with pytest.raises(LavaError, match="deploys from https://files.example.org/x"):
        local.run_local(lab.directory)
    here = _write(tmp_path / "h", [("a", ["true"])])
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LavaError, match="lava-run needs root"):
        local.run_local(here.directory)


def _lavacli_config(tmp_path):
    cfg = tmp_path / "xdg"
    cfg.mkdir()
    (cfg / "lavacli.yaml").write_text(yaml.safe_dump({
        "lab": {"uri": "https://lava.example.org/RPC2", "username": "me", "token": "SECRET"},
        "other": {"uri": "https://other.example.org/RPC2", "username": "me", "token": "SECRET2"}}))
    return cfg


def test_identity_comes_from_lavaclis_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_lavacli_config(tmp_path)))
    assert submit.identity("lab") == "lab"
    assert submit.identity("https://other.example.org/RPC2") == "other"
    assert submit.identity("https://lava.example.org/") == "lab"
    with pytest.raises(LavaError, match="no lavacli identity for nowhere.example.org"):
        submit.identity("https://nowhere.example.org")
    with pytest.raises(LavaError, match="no lavacli identity named 'nope'"):
        submit.identity("nope")


@pytest.mark.skipif(shutil.which("lavacli") is None, reason="lavacli is not installed")
def test_submit_builds_lavacli_command_and_sends_nothing_local(tmp_path, monkeypatch, ktest_home):
    cfg = _lavacli_config(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    lab = _write(tmp_path / "l", [("a", ["true"])], url="https://files.example.org/x")
    job = submit.check_submittable(lab.directory)
    argv = submit.submit_argv(job, submit.identity("https://lava.example.org/RPC2"))
    assert argv[1:] == ["-i", "lab", "jobs", "submit", "--url", str(job)]
    assert not any("SECRET" in a for a in argv)
    assert submit.logs_argv("1234", "lab")[1:] == ["-i", "lab", "jobs", "logs", "--raw", "1234"]
    dry = _ktest("lava", "submit", lab.directory, "--server", "https://lava.example.org/RPC2", "--dry-run",
                 env={"XDG_CONFIG_HOME": str(cfg)})
    assert dry.returncode == 0 and dry.stdout.split()[1:] == ["-i", "lab", "jobs", "submit", "--url", str(job)]
    # A job deploying file:// URLs is refused before lavacli runs.
    here = _write(tmp_path / "h", [("a", ["true"])])
    r = _ktest("lava", "submit", here.directory, "--server", "lab", env={"XDG_CONFIG_HOME": str(cfg)})
    assert r.returncode == 1 and "a lab cannot fetch that" in r.stderr and "--artifacts-url" in r.stderr
    with pytest.raises(LavaError, match="neither a job log file nor a LAVA job id"):
        submit.fetch_log("../etc", "lab", tmp_path / "x.log")


def test_progress_names_each_case_as_lava_run_logs_its_verdict():
    seen = [m.groups() for m in map(local.CASE_RE.search, BOOT_LOG.read_text().splitlines()) if m]
    assert seen == [("patched-modules", "pass"), ("exits-3", "fail")]
