"""The `qarun` command line without infrastructure: --help, spec-file errors, state."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from qarun_cli.errors import CLIError
from qarun_cli.main import main
from qarun_cli.runner import parse_faults
from qarun_cli.sim_options import CAPACITY_MODES, parse_limits
from qarun_simulator.provider_limits import CAPACITY_MODES as PROVIDER_CAPACITY_MODES
from qarun_simulator.server import parse_args

QARUN = [sys.executable, "-m", "qarun_cli.main"]
COMMANDS = {
    "run": ["--local", "--total", "Ctrl-C", "resume"],
    "status": ["RUN", "progress"],
    "report": ["latency", "throughput", "--json"],
    "scale": ["N", "replicas"],
    "dlq": ["reason", "--limit"],
    "replay": ["dead letters", "--exhausted"],
}

GOOD = """\
apiVersion: qarun.io/v1alpha1
kind: QARun
metadata:
  name: tiny
spec:
  llm:
    model: qarun-sim
"""


def test_top_level_help_lists_every_command() -> None:
    done = subprocess.run([*QARUN, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert f"qarun {command}" in done.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: qarun {command}")
    for word in COMMANDS[command]:
        assert word in out, f"{command} --help does not mention {word!r}"


def _bad(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    done = subprocess.run(
        [*QARUN, "run", "-f", str(path), "--local"], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stderr


SPEC_ERRORS = [
    ("scoring:\n    threshold: 1.5\n", "spec.scoring.threshold", "less than or equal to 1"),
    ("traffic:\n    ratePerSecond: -3\n", "spec.traffic.ratePerSecond", "greater than 0"),
    ("scoring:\n    method: bertscore\n", "spec.scoring.method", "lexical"),
    ("workers:\n    replicas: -1\n", "spec.workers.replicas", "greater than or equal to 0"),
    ("llm:\n    modle: x\n", "spec.llm.modle", "unknown field"),
    (
        "traffic:\n    total: 10\n    durationSeconds: 5\n",
        "spec.traffic.durationSeconds",
        "not both",
    ),
    ("llm:\n    model: m\n    baseURL: ftp://x\n", "spec.llm.baseURL", "pattern"),
    ("kafka:\n    partitions: 0\n", "spec.kafka.partitions", "greater than or equal to 1"),
    ("traffic:\n    total: 50\n  dataset:\n    limit: 10\n", "spec.traffic.total", "dataset.limit"),
]


@pytest.mark.parametrize(("patch", "field", "words"), SPEC_ERRORS)
def test_bad_spec_names_the_field(tmp_path: Path, patch: str, field: str, words: str) -> None:
    if patch.startswith("llm:"):  # the patch replaces the llm section
        body = GOOD.replace("  llm:\n    model: qarun-sim\n", "  " + patch)
    else:
        body = GOOD + "  " + patch
    code, err = _bad(tmp_path, body)
    assert code == 2, err
    assert "is not a valid QARun" in err
    assert field in err, err
    assert words in err, err


def test_missing_model_and_bad_name(tmp_path: Path) -> None:
    text = GOOD.replace("name: tiny", "name: Bad.Name").replace("model: qarun-sim", "{}")
    code, err = _bad(tmp_path, text)
    assert code == 2
    assert "metadata.name" in err
    assert "spec.llm.model: required field is missing" in err


def test_not_yaml_and_wrong_kind(tmp_path: Path) -> None:
    code, err = _bad(tmp_path, "spec: [unclosed\n")
    assert code == 2 and "not valid YAML" in err
    code, err = _bad(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert code == 2 and "no document with kind: QARun" in err
    code, err = _bad(tmp_path, GOOD.replace("qarun.io/v1alpha1", "qarun.io/v2"))
    assert code == 2 and "apiVersion: must be qarun.io/v1alpha1" in err


def test_run_without_local_says_how(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(GOOD)
    done = subprocess.run(
        [*QARUN, "run", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "kubectl apply -f" in done.stderr and "--k8s" in done.stderr


def test_sample_spec_file_is_valid() -> None:
    from qarun_cli.specfile import load  # noqa: PLC0415

    sample = load(Path(__file__).parents[2] / "k8s" / "qarun.yaml")
    assert sample.spec.llm.model
    assert sample.name


def test_fault_option_is_checked() -> None:
    assert parse_faults("429=0.3,503=0.1,timeout=0.01") == {
        "429": 0.3,
        "503": 0.1,
        "timeout": 0.01,
    }
    with pytest.raises(CLIError, match="NAME=RATE"):
        parse_faults("418=0.1")
    with pytest.raises(CLIError, match=r"0\.\.1"):
        parse_faults("429=2")


def test_simulator_limits_option_is_checked() -> None:
    assert parse_limits("capacity=200,mode=slow,rpm=3000,tpm=90000") == {
        "--capacity": "200",
        "--capacity-mode": "slow",
        "--rpm-limit": "3000",
        "--tpm-limit": "90000",
    }
    with pytest.raises(CLIError, match="NAME=VALUE"):
        parse_limits("burst=3")
    with pytest.raises(CLIError, match="mode must be one of"):
        parse_limits("mode=fast")
    with pytest.raises(CLIError, match="whole number"):
        parse_limits("rpm=1.5")
    assert CAPACITY_MODES == PROVIDER_CAPACITY_MODES  # the CLI checks what the simulator takes
    simulator_flags = parse_args([*itertools.chain(*parse_limits("capacity=2,rpm=60").items())])
    assert (simulator_flags.capacity, simulator_flags.rpm_limit) == (2, 60)


def test_commands_on_unknown_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QARUN_STATE_DIR", str(tmp_path))
    for command in ("status", "report", "dlq", "replay"):
        assert main([command, "nope"]) == 1
        assert "no local run named 'nope'" in capsys.readouterr().err
    assert main(["scale", "Bad_Name", "3"]) == 2
