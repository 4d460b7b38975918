"""
Tests for runpod_service.py, offline: the RunPod GraphQL endpoint is faked at the HTTP layer with `responses`,
git runs on a throwaway repository with a bare remote in tmp_path, and the pod's start script runs under a real
bash with fake git / python / runpodctl on PATH.
"""

import json
import os
import re
import shlex
import stat
import subprocess
import sys

import pytest
import responses

import runpod_service as rs

GRAPHQL = "https://api.runpod.io/graphql"
RUNPOD_KEY = "rp-test-key-0123456789"
WANDB_KEY = "wb-test-key-9876543210"
GPU = "NVIDIA A100-SXM4-80GB"
RUN_ID = "abcd1234"
NASTY_NAME = "a b;$(rm -rf /)"
NASTY_NOTE = "it's \"quoted\" \\ $HOME `id` & | > <\nnext line"

TRAIN_PY = """
dag_depth = 0
note = ''
out_dir = 'out'
dataset = 'numeric'
wandb_log = False
wandb_project = 'nanoGPT-DAG'
wandb_run_name = 'gpt2'
wandb_run_id = ''
if True:
    compile = True
"""


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def commit(cwd, message):
    sh("git", "add", "-A", cwd=cwd)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message, cwd=cwd)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A committed and pushed checkout with train.py and config/train_default.py; cwd is its root."""
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    sh("git", "init", "-q", "--bare", str(remote), cwd=tmp_path)
    sh("git", "init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "config").mkdir()
    (work / "train.py").write_text(TRAIN_PY)
    (work / "config" / "train_default.py").write_text("dag_depth = 2\nwandb_project = 'dag-from-config'\n")
    (work / "requirements-dev.txt").write_text("numpy\n")
    commit(work, "init")
    sh("git", "remote", "add", "origin", str(remote), cwd=work)
    sh("git", "push", "-q", "-u", "origin", "main", cwd=work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("RUNPOD_API_KEY", RUNPOD_KEY)
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    for name in ("WANDB_ENTITY", "RUNPOD_API_BASE_URL", "RUNPOD_POD_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(rs, "new_run_id", lambda: RUN_ID)
    return work


@pytest.fixture
def api():
    """The faked RunPod GraphQL endpoint; any request not registered fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def flat(s):
    """Collapse runs of whitespace, to compare GraphQL documents."""
    return " ".join(s.split())


def sent(call):
    """The GraphQL document of one recorded request, checking it carried the API key as RunPod expects."""
    assert call.request.url == GRAPHQL
    assert call.request.headers["Authorization"] == f"Bearer {RUNPOD_KEY}"
    return flat(json.loads(call.request.body)["query"])


def train_args(*extra):
    return ["train", "config/train_default.py", "--dag_depth=4", "--gpu-type", GPU, *extra]


# --------------------------------------------------------------------------------------------------------------
# offline checks: they fail before any request

@pytest.mark.parametrize("argv", [train_args(), ["gpus"], ["status", "pod1"], ["stop", "pod1"], ["terminate", "pod1"]])
def test_missing_runpod_key_fails_before_any_request(repo, api, monkeypatch, capsys, argv):
    monkeypatch.delenv("RUNPOD_API_KEY")
    assert rs.main(argv) == 1
    assert "RUNPOD_API_KEY is not set" in capsys.readouterr().err
    assert len(api.calls) == 0


def test_missing_wandb_key_fails_before_any_request(repo, api, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY")
    assert rs.main(train_args()) == 1
    assert "WANDB_API_KEY is not set" in capsys.readouterr().err
    assert len(api.calls) == 0


def test_unknown_gpu_type_names_close_matches(repo, api, capsys):
    argv = ["train", "config/train_default.py", "--gpu-type", "NVIDIA A100-40GB"]
    assert rs.main(argv) == 1
    err = capsys.readouterr().err
    assert "unknown GPU type 'NVIDIA A100-40GB'" in err and "'NVIDIA A100-SXM4-80GB'" in err
    assert len(api.calls) == 0
    assert rs.check_gpu_type("nvidia h100 80gb hbm3") == "NVIDIA H100 80GB HBM3"


def test_refuses_uncommitted_work(repo, api, capsys):
    (repo / "train.py").write_text(TRAIN_PY + "lr = 1.0\n")
    assert rs.main(train_args()) == 1
    err = capsys.readouterr().err
    assert "uncommitted changes (train.py)" in err and "commit" in err
    assert len(api.calls) == 0


def test_refuses_unpushed_commit(repo, api, capsys):
    (repo / "notes.txt").write_text("x")
    commit(repo, "local only")
    assert rs.main(train_args()) == 1
    assert "git push" in capsys.readouterr().err
    assert len(api.calls) == 0


@pytest.mark.parametrize("arg, message", [
    ("--dag_dept=4", "no setting --dag_dept (did you mean --dag_depth?)"),
    ("--gpu_count=2", "did you mean --gpu-count"),
])
def test_bad_override_fails_before_any_request(repo, api, capsys, arg, message):
    assert rs.main(train_args(arg)) == 1
    assert message in capsys.readouterr().err
    assert len(api.calls) == 0


def test_bad_pod_id_fails_before_any_request(repo, api, capsys):
    assert rs.main(["stop", 'x"}) { id } }']) == 1
    assert "is not a pod id" in capsys.readouterr().err
    assert len(api.calls) == 0


def test_runpod_sdk_stays_out_of_the_import_path():
    code = "import sys, runpod_service; assert 'runpod' not in sys.modules, 'runpod imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(rs.__file__))


# --------------------------------------------------------------------------------------------------------------
# dry run

def test_dry_run_prints_the_plan_without_network_or_secrets(repo, api, capsys):
    assert rs.main(train_args("--dry-run", "--wandb-entity", "me")) == 0
    out, err = capsys.readouterr()
    assert len(api.calls) == 0
    assert err == ""
    assert RUNPOD_KEY not in out + err and WANDB_KEY not in out + err
    spec = json.loads(out[out.index("{"):out.index("\n}") + 2])
    assert spec["gpu_type_id"] == GPU and spec["volume_mount_path"] == "/workspace"
    assert spec["env"] == {"PYTHONUNBUFFERED": "1", "WANDB_API_KEY": "<redacted>", "WANDB_ENTITY": "me"}
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert f"git checkout --quiet --detach {sha}" in out
    assert (f"python train.py config/train_default.py --dag_depth=4 --out_dir=/workspace/out-train_default-{RUN_ID} "
            f"--wandb_log=True --wandb_project=dag-from-config --wandb_run_name=train_default-{RUN_ID} "
            f"--wandb_run_id={RUN_ID}") in out
    assert f"W&B run:    https://wandb.ai/me/dag-from-config/runs/{RUN_ID}\n" in out


def test_dry_run_warns_instead_of_failing_on_readiness(repo, api, monkeypatch, capsys):
    monkeypatch.delenv("RUNPOD_API_KEY")
    monkeypatch.delenv("WANDB_API_KEY")
    (repo / "notes.txt").write_text("x")
    commit(repo, "local only")
    assert rs.main(train_args("--dry-run")) == 0
    out, err = capsys.readouterr()
    assert len(api.calls) == 0
    assert "git push" in err and "RUNPOD_API_KEY is not set" in err and "WANDB_API_KEY is not set" in err
    assert '"WANDB_API_KEY": "<not set>"' in out
    assert f"https://wandb.ai/<your-entity>/dag-from-config/runs/{RUN_ID}" in out and "WANDB_ENTITY" in out


def test_dry_run_without_wandb_on_several_gpus_with_data_preparation(repo, api, monkeypatch, capsys):
    (repo / "data" / "numeric").mkdir(parents=True)
    (repo / "data" / "numeric" / "prepare.py").write_text("")  # train.py's default dataset
    commit(repo, "data")
    monkeypatch.delenv("WANDB_API_KEY")
    assert rs.main(train_args("--dry-run", "--gpu-count", "2", "--wandb_log=False", "--name", "r1")) == 0
    out, err = capsys.readouterr()
    assert "WANDB" not in err and "W&B:        off" in out and "--wandb_project" not in out
    assert "  [ -f data/numeric/train.bin ] || python data/numeric/prepare.py\n" in out
    assert ("  torchrun --standalone --nproc_per_node=2 train.py config/train_default.py --dag_depth=4 "
            "--wandb_log=False --out_dir=/workspace/out-r1\n") in out


def test_no_origin_remote_is_a_clear_error(repo, api, capsys):
    sh("git", "remote", "remove", "origin", cwd=repo)
    assert rs.main(train_args("--dry-run")) == 1
    assert "no remote 'origin'" in capsys.readouterr().err


def test_dry_run_hides_a_token_in_the_repo_url(repo, api, capsys):
    url = "https://user:ghp_secret123@github.com/me/nanoGPT-DAG.git"
    assert rs.main(train_args("--dry-run", "--repo-url", url)) == 0
    out = capsys.readouterr().out
    assert "ghp_secret123" not in out and "https://<redacted>@github.com/me/nanoGPT-DAG.git" in out
    assert rs.clone_url("git@github.com:me/nanoGPT-DAG.git") == "https://github.com/me/nanoGPT-DAG.git"


# --------------------------------------------------------------------------------------------------------------
# API round trips, asserting the exact GraphQL documents sent

GPU_QUERY = flat(f"""
query GpuTypes {{ gpuTypes(input: {{id: "{GPU}"}}) {{ maxGpuCount id displayName manufacturer memoryInGb cudaCores
secureCloud communityCloud securePrice communityPrice oneMonthPrice threeMonthPrice oneWeekPrice communitySpotPrice
secureSpotPrice lowestPrice(input: {{gpuCount: 1}}) {{ minimumBidPrice uninterruptablePrice }} }} }}""")

DEPLOY = flat(f"""
mutation {{ podFindAndDeployOnDemand( input: {{ name: "nanogpt-dag-train_default-{RUN_ID}",
imageName: "{rs.DEFAULT_IMAGE}", cloudType: ALL, startSsh: true, gpuTypeId: "{GPU}", supportPublicIp: true,
gpuCount: 1, volumeInGb: 50, minVcpuCount: 1, minMemoryInGb: 1, dataCenterId: null, dockerArgs: "DOCKER_ARGS",
containerDiskInGb: 50, volumeMountPath: "/workspace", env: [{{ key: "PYTHONUNBUFFERED", value: "1" }},
{{ key: "WANDB_API_KEY", value: "{WANDB_KEY}" }}ENTITY] }} ) {{ id imageName env machineId machine {{ podHostId }} }} }}""")


def create_pod(api, argv, entity=None):
    """Run `train` against the faked API, check the two documents it sends (the SDK checks the GPU type, then
    deploys) and return the start script the pod was given."""
    api.post(GRAPHQL, json={"data": {"gpuTypes": [{"id": GPU, "displayName": "A100 SXM"}]}})
    api.post(GRAPHQL, json={"data": {"podFindAndDeployOnDemand": {
        "id": "pod123", "imageName": rs.DEFAULT_IMAGE, "env": [], "machineId": "m1", "machine": {"podHostId": "h"}}}})
    assert rs.main(argv) == 0
    assert [sent(c) for c in api.calls][0] == GPU_QUERY
    deploy = sent(api.calls[1])
    literal = re.search(r'dockerArgs: "((?:[^"\\]|\\.)*)"', deploy).group(1)
    env_tail = f', {{ key: "WANDB_ENTITY", value: "{entity}" }}' if entity else ""
    assert deploy.replace(literal, "DOCKER_ARGS", 1) == DEPLOY.replace("ENTITY", env_tail)
    docker_args = json.loads(f'"{literal}"')  # GraphQL string escapes are JSON's
    bash, dash_c, script = shlex.split(docker_args)  # RunPod shlex-splits dockerArgs into the container command
    assert (bash, dash_c) == ("bash", "-c")
    return script


def test_create_prints_pod_gpu_and_the_wandb_link_of_the_run(repo, api, capsys):
    script = create_pod(api, train_args("--wandb-entity", "me"), entity="me")
    out = capsys.readouterr().out
    assert "pod id:     pod123\n" in out and f"GPU type:   {GPU}\n" in out
    link = re.search(r"W&B run:    https://wandb.ai/me/dag-from-config/runs/(\w+)\n", out).group(1)
    assert f"--wandb_run_id={link} " in script.replace("\n", " ") and link == RUN_ID
    assert RUNPOD_KEY not in out and WANDB_KEY not in out and RUNPOD_KEY not in script


def test_create_error_when_runpod_has_no_such_gpu(repo, api, capsys):
    api.post(GRAPHQL, json={"data": {"gpuTypes": []}})
    assert rs.main(train_args()) == 1
    assert "No GPU found" in capsys.readouterr().err
    assert len(api.calls) == 1


def test_status_round_trip_never_prints_the_pod_env(repo, api, capsys):
    api.post(GRAPHQL, json={"data": {"pod": {
        "id": "pod123", "name": "nanogpt-dag-x", "desiredStatus": "RUNNING", "gpuCount": 1, "costPerHr": 1.19,
        "imageName": rs.DEFAULT_IMAGE, "uptimeSeconds": 42, "env": [f"WANDB_API_KEY={WANDB_KEY}"],
        "machine": {"gpuDisplayName": "A100 SXM"}}}})
    assert rs.main(["status", "pod123"]) == 0
    query = sent(api.calls[0])
    assert query.startswith('query pod { pod(input: {podId: "pod123"}) { id containerDiskInGb costPerHr')
    out = capsys.readouterr().out
    assert "status:     RUNNING" in out and "GPU:        1 x A100 SXM" in out and WANDB_KEY not in out


def test_stop_round_trip(repo, api, capsys):
    api.post(GRAPHQL, json={"data": {"podStop": {"id": "pod123", "desiredStatus": "EXITED"}}})
    assert rs.main(["stop", "pod123"]) == 0
    assert sent(api.calls[0]) == 'mutation { podStop(input: { podId: "pod123" }) { id desiredStatus } }'
    assert "pod pod123: EXITED" in capsys.readouterr().out


def test_terminate_round_trip(repo, api, capsys):
    api.post(GRAPHQL, json={"data": {"podTerminate": None}})
    assert rs.main(["terminate", "pod123"]) == 0
    assert sent(api.calls[0]) == 'mutation { podTerminate(input: { podId: "pod123" }) }'
    assert "pod pod123: terminated" in capsys.readouterr().out


def test_gpus_lists_live_ids(repo, api, capsys):
    api.post(GRAPHQL, json={"data": {"gpuTypes": [{"id": GPU, "displayName": "A100 SXM", "memoryInGb": 80}]}})
    assert rs.main(["gpus"]) == 0
    assert sent(api.calls[0]) == "query GpuTypes { gpuTypes { id displayName memoryInGb } }"
    assert GPU in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["status", "pod123"], ["stop", "pod123"], ["terminate", "pod123"], ["gpus"],
                                  train_args()])
def test_401_is_a_clear_error(repo, api, capsys, argv):
    api.post(GRAPHQL, status=401, body="Unauthorized")
    assert rs.main(argv) == 1
    err = capsys.readouterr().err
    assert "RunPod rejected the API key (HTTP 401)" in err and RUNPOD_KEY not in err
    assert len(api.calls) == 1


@pytest.mark.parametrize("argv", [["status", "pod123"], ["stop", "pod123"], ["terminate", "pod123"], train_args()])
def test_graphql_error_is_a_clear_error(repo, api, capsys, argv):
    api.post(GRAPHQL, json={"errors": [{"message": "Something went wrong. Please try again later."}]})
    assert rs.main(argv) == 1
    assert "RunPod API error: Something went wrong. Please try again later." in capsys.readouterr().err


def test_server_error_page_is_a_clear_error(repo, api, capsys):
    api.post(GRAPHQL, status=502, body="<html>bad gateway</html>")
    assert rs.main(["status", "pod123"]) == 1
    assert "could not talk to the RunPod API" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# the pod's start script, run by a real bash with fake tools

FAKE_PYTHON = f"""#!{sys.executable}
import json, os, sys
if sys.argv[1:3] == ["-m", "pip"]:
    sys.exit(0)
with open(os.environ["ARGV_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(int(os.environ.get("TRAIN_EXIT", "0")))
"""
FAKE_GIT = """#!/bin/bash
echo "git $*" >> "$TOOL_LOG"
if [ "$1" = clone ]; then mkdir -p "$3/.git"; fi
"""
FAKE_RUNPODCTL = """#!/bin/bash
echo "runpodctl $*" >> "$TOOL_LOG"
"""


def run_script(script, tmp_path, train_exit=0, tools=()):
    """Run the start script with /workspace moved into tmp_path, fake git / python / runpodctl / curl / sleep
    (and `tools`, (name, text) pairs) on PATH, and the variables RunPod sets in a pod."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in [("python", FAKE_PYTHON), ("git", FAKE_GIT), ("runpodctl", FAKE_RUNPODCTL),
                       ("curl", FAKE_RUNPODCTL.replace("runpodctl", "curl")), ("sleep", "#!/bin/bash\n"), *tools]:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    workspace = tmp_path / "workspace"
    script = script.replace(f"RUN_DIR={rs.WORKSPACE}/", f"RUN_DIR={workspace}/", 1)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", ARGV_LOG=str(tmp_path / "argv.log"),
               TOOL_LOG=str(tmp_path / "tools.log"), TRAIN_EXIT=str(train_exit), RUNPOD_POD_ID="pod123",
               RUNPOD_API_KEY="pod-scoped-key")
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=20)
    return proc, workspace


def test_overrides_reach_train_py_unchanged_and_the_pod_stops_itself(repo, api, capsys, tmp_path):
    script = create_pod(api, train_args(f"--wandb_run_name={NASTY_NAME}", f"--note={NASTY_NOTE}"))
    proc, workspace = run_script(script, tmp_path, train_exit=3)
    argv = [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]
    assert argv == [["train.py", "config/train_default.py", "--dag_depth=4", f"--wandb_run_name={NASTY_NAME}",
                     f"--note={NASTY_NOTE}", f"--out_dir=/workspace/out-train_default-{RUN_ID}",
                     "--wandb_log=True", "--wandb_project=dag-from-config", f"--wandb_run_id={RUN_ID}"]]
    run_dir = workspace / f"train_default-{RUN_ID}"
    assert (run_dir / "exit_status").read_text() == "3\n"  # a failed training still stops the pod ...
    assert "training exited with status 3" in (run_dir / "train.log").read_text()  # ... and its status is kept
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    tools = (tmp_path / "tools.log").read_text().splitlines()
    assert tools == [f"git clone {repo.parent / 'remote.git'} {run_dir}/repo",
                     f"git checkout --quiet --detach {sha}", "runpodctl stop pod pod123"]
    # resumed later, the pod does not train again
    proc, _ = run_script(script, tmp_path)
    assert "not training again" in proc.stdout and len((tmp_path / "argv.log").read_text().splitlines()) == 1


@pytest.mark.parametrize("on_exit, mutation", [
    ("stop", 'mutation { podStop(input: {podId: "pod123"}) { id } }'),
    ("terminate", 'mutation { podTerminate(input: {podId: "pod123"}) }'),
])
def test_self_stop_falls_back_to_the_graphql_api(tmp_path, on_exit, mutation):
    script = rs.start_script("https://example.com/r.git", "abc", ["python", "train.py", "c.py"], "run", on_exit)
    curl = (f"#!{sys.executable}\nimport json, sys\n"
            f"json.dump(sys.argv[1:], open({str(tmp_path / 'curl.json')!r}, 'w'))\n")
    proc, workspace = run_script(script, tmp_path, tools=[("curl", curl), ("runpodctl", "#!/bin/bash\nexit 1\n")])
    assert (workspace / "run" / "exit_status").read_text() == "0\n"
    args = json.loads((tmp_path / "curl.json").read_text())
    assert args[args.index("-X") + 1:args.index("-X") + 3] == ["POST", GRAPHQL]
    assert args[args.index("-H", args.index("-H") + 1) + 1] == "Authorization: Bearer pod-scoped-key"
    assert json.loads(args[args.index("--data") + 1]) == {"query": mutation}
