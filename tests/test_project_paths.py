"""One project root for every relative path, whatever the current directory; limits on inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

OSIRIS = "import sys; from osiris.compiler.cli import osiris_main; sys.exit(osiris_main())"
PIPELINE = """\
oml_version: "0.1.0"
name: paths
steps:
  - id: x
    component: filesystem.csv_extractor
    mode: read
    config:
      path: data/x.csv
  - id: to-wh
    component: duckdb.writer
    mode: write
    needs: [x]
    config:
      connection: "@duckdb.wh"
      table: x
      write_mode: replace
  - id: to-csv
    component: filesystem.csv_writer
    mode: write
    needs: [x]
    config:
      path: output/x.csv
"""
# The warehouse path comes from the project's .env, and is relative: both resolve in the project.
CONNECTIONS = "version: 1\nconnections:\n  duckdb:\n    wh:\n      path: ${WH_PATH}\n"


def _env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("OSIRIS_")}
    if "OSIRIS_CACHE_DIR" in os.environ:  # the test session's cache
        keep["OSIRIS_CACHE_DIR"] = os.environ["OSIRIS_CACHE_DIR"]
    return keep


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120
    )


def osiris(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run(["-c", OSIRIS, *args], cwd)


def oml_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "osiris.runtime.cli", *args], cwd)


def _project(root: Path, *, connections_in: Path | None = None) -> Path:
    """proj/ with data, pipeline and .env; the connections file in proj/ unless connections_in
    names another folder (then proj/ is marked by osiris.yaml)."""
    project = root / "proj"
    (project / "data").mkdir(parents=True)
    (project / "data" / "x.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    (project / "pipeline.oml").write_text(PIPELINE, encoding="utf-8")
    (project / ".env").write_text("WH_PATH=out/wh.duckdb\n", encoding="utf-8")
    (project / "out").mkdir()
    folder = connections_in or project
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "osiris_connections.yaml").write_text(CONNECTIONS, encoding="utf-8")
    if connections_in is not None:
        (project / "osiris.yaml").write_text("name: proj\n", encoding="utf-8")
    (root / "elsewhere").mkdir()
    return project


def _assert_ran_in(project: Path, result: subprocess.CompletedProcess[str], cwd: Path) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    with duckdb.connect(str(project / "out" / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM x").fetchone() == (2,)
    assert (project / "output" / "x.csv").is_file()
    assert len(list((project / "runs").iterdir())) == 1
    assert list(cwd.iterdir()) == [], "nothing is written under the current directory"


def test_osiris_run_from_another_directory(tmp_path: Path) -> None:
    project = _project(tmp_path)
    cwd = tmp_path / "elsewhere"
    _assert_ran_in(project, osiris("run", "../proj/pipeline.oml", cwd=cwd), cwd)


def test_osiris_run_with_connections_from_another_directory(tmp_path: Path) -> None:
    project = _project(tmp_path)
    cwd = tmp_path / "elsewhere"
    result = osiris(
        "run", "../proj/pipeline.oml", "--connections", "../proj/osiris_connections.yaml", cwd=cwd
    )
    _assert_ran_in(project, result, cwd)


@pytest.mark.parametrize("named", [False, True], ids=["found", "--connections"])
def test_oml_run_from_another_directory(tmp_path: Path, named: bool) -> None:
    """The root is found walking up from the manifest (build/ inside the project)."""
    project = _project(tmp_path)
    cwd = tmp_path / "elsewhere"
    compiled = osiris("compile", "pipeline.oml", "-o", "build", cwd=project)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    flags = ["--connections", "../proj/osiris_connections.yaml"] if named else []
    _assert_ran_in(project, oml_run("../proj/build", *flags, cwd=cwd), cwd)


def test_no_project_root_uses_the_connections_files_folder(tmp_path: Path) -> None:
    """A pipeline outside any project, run with --connections: the connections file's folder
    is the root (its data, .env, warehouse and runs/)."""
    project = _project(tmp_path)
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "p.oml").write_text(PIPELINE, encoding="utf-8")
    cwd = tmp_path / "elsewhere"
    result = osiris(
        "run", "../loose/p.oml", "--connections", "../proj/osiris_connections.yaml", cwd=cwd
    )
    _assert_ran_in(project, result, cwd)
    assert list(loose.iterdir()) == [loose / "p.oml"]


def test_env_is_read_in_the_project_root(tmp_path: Path) -> None:
    """A connections file shared from elsewhere: .env and relative connection paths still
    belong to the pipeline's project (marked by osiris.yaml)."""
    shared = tmp_path / "shared"
    project = _project(tmp_path, connections_in=shared)
    cwd = tmp_path / "elsewhere"
    result = osiris(
        "run", "../proj/pipeline.oml", "--connections", "../shared/osiris_connections.yaml", cwd=cwd
    )
    _assert_ran_in(project, result, cwd)
    assert sorted(p.name for p in shared.iterdir()) == ["osiris_connections.yaml"]


def test_project_dir_overrides(tmp_path: Path) -> None:
    project = _project(tmp_path)
    cwd = tmp_path / "elsewhere"
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    (other / "out").mkdir()
    (other / "data" / "x.csv").write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    (other / ".env").write_text("WH_PATH=out/wh.duckdb\n", encoding="utf-8")
    result = osiris(
        "run",
        "../proj/pipeline.oml",
        "--project-dir",
        "../other",
        "--connections",
        "../proj/osiris_connections.yaml",
        cwd=cwd,
    )
    _assert_ran_in(other, result, cwd)
    assert not (project / "runs").exists()


def _long_id_project(root: Path, length: int) -> tuple[Path, str]:
    step_id = "s" + "x" * (length - 1)
    (root / "a.csv").write_text("id\n1\n2\n", encoding="utf-8")
    (root / "osiris.yaml").write_text("name: long\n", encoding="utf-8")
    (root / "p.oml").write_text(
        'oml_version: "0.1.0"\nname: long\nsteps:\n'
        f"  - id: {step_id}\n    component: filesystem.csv_extractor\n    mode: read\n"
        "    config: {path: a.csv}\n"
        "  - id: save\n    component: filesystem.csv_writer\n    mode: write\n"
        f"    needs: [{step_id}]\n    config: {{path: out.csv}}\n",
        encoding="utf-8",
    )
    return root / "p.oml", step_id


def test_longest_step_id_runs(tmp_path: Path) -> None:
    """MAX_STEP_ID_LENGTH characters: every file named after the id can be written."""
    from osiris.oml.parser import MAX_STEP_ID_LENGTH

    _, step_id = _long_id_project(tmp_path, MAX_STEP_ID_LENGTH)
    result = osiris("run", "p.oml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "cfg" / f"{step_id}.json").is_file()
    assert (run_dir / "artifacts" / step_id).is_dir()


def test_too_long_step_id_is_refused_at_check(tmp_path: Path) -> None:
    """A 260-character id used to pass check and crash the run with 'File name too long'."""
    _long_id_project(tmp_path, 260)
    for command in (["check", "p.oml"], ["run", "p.oml"]):
        result = osiris(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "OML012" in result.stdout and "at most 128" in result.stdout, result.stdout
        assert "File name too long" not in result.stdout + result.stderr
    assert not (tmp_path / "runs").exists()


def test_schemas_limit_step_ids_like_the_parser() -> None:
    """oml-run validates manifests with the same limit (a hand-made manifest exits 3)."""
    import json

    from osiris.oml.parser import MAX_STEP_ID_LENGTH

    specs = Path(__file__).resolve().parent.parent / "specs"
    for name in ("oml.schema.json", "manifest.schema.json"):
        schema = json.loads((specs / name).read_text(encoding="utf-8"))
        assert schema["$defs"]["step_id"]["maxLength"] == MAX_STEP_ID_LENGTH, name


def _bad_files(root: Path) -> dict[str, tuple[str, str]]:
    """name -> (path, what the one-line error says)."""
    big = root / "big.env"
    big.write_bytes(b"# padding\n" * 120_000)  # > 1 MiB
    return {
        "dev-zero": ("/dev/zero", "is not a regular file"),
        "directory": (str(root), "is a directory"),
        "too-large": (str(big), "is larger than 1 MiB"),
    }


@pytest.mark.parametrize("bad", ["dev-zero", "directory", "too-large"])
@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("oml-run", "--secrets-file"),
        ("oml-run", "--connections"),
        ("osiris run", "--secrets-file"),
        ("osiris run", "--connections"),
        ("omlc check", "--connections"),  # check reads no secrets
    ],
)
def test_unreadable_config_files_exit_5_with_one_line(
    tmp_path: Path, command: str, flag: str, bad: str
) -> None:
    """/dev/zero used to hang, a directory was said not to exist."""
    project = _project(tmp_path)
    path, says = _bad_files(tmp_path / "elsewhere")[bad]
    if command == "oml-run":
        compiled = osiris("compile", "pipeline.oml", "-o", "build", cwd=project)
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr
        result = oml_run("build", flag, path, cwd=project)
    elif command == "osiris run":
        result = osiris("run", "pipeline.oml", flag, path, cwd=project)
    else:
        result = osiris("check", "pipeline.oml", flag, path, cwd=project)
    assert result.returncode == 5, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and says in lines[0] and path in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_pipe_is_a_fine_secrets_file(tmp_path: Path) -> None:
    """`--secrets-file <(vault read ...)`: a FIFO is read (bounded like a file)."""
    import threading

    from osiris.runtime.secrets import read_dotenv

    fifo = tmp_path / "secrets"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w", encoding="utf-8") as handle:
            handle.write("TOKEN=abc\n")

    writer = threading.Thread(target=feed)
    writer.start()
    assert read_dotenv(fifo) == {"TOKEN": "abc"}
    writer.join()
