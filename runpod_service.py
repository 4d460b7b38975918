"""
Launch train.py on a RunPod GPU pod and manage the pod.

    python runpod_service.py train config/train_default.py --dag_depth=4 --gpu-type "NVIDIA A100-SXM4-80GB"
    python runpod_service.py train config/train_default.py --gpu-type "NVIDIA L4" --dry-run
    python runpod_service.py gpus | status POD_ID | stop POD_ID | terminate POD_ID

`train` starts a pod that clones this repository at the current commit (which must be committed and pushed),
installs requirements-dev.txt and runs `python train.py <config> --key=value ...` with the overrides given here,
logging to W&B under a run id chosen here, so the link printed at launch is the run's page. When training ends,
pass or fail, the pod stops itself (`--on-exit`), so an idle GPU costs nothing; the checkpoints stay on the pod's
volume (/workspace/out-<run name>) and the exit status in /workspace/<run name>/exit_status.

Needs RUNPOD_API_KEY (https://www.runpod.io/console/user/settings) and, for W&B, WANDB_API_KEY
(https://wandb.ai/authorize). The pod stops itself with the pod-scoped key RunPod gives every pod; your own
RunPod key never leaves this machine. The runpod SDK is imported only inside the functions that call the API,
so training and sampling never pay for it.
"""

import argparse
import ast
import difflib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys

# GPU type ids as RunPod names them, for an offline check of --gpu-type; `gpus` lists the live ones
KNOWN_GPU_TYPES = [
    "NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 5090",
    "NVIDIA RTX A4000", "NVIDIA RTX A4500", "NVIDIA RTX A5000", "NVIDIA RTX A6000",
    "NVIDIA RTX 2000 Ada Generation", "NVIDIA RTX 4000 Ada Generation", "NVIDIA RTX 6000 Ada Generation",
    "NVIDIA L4", "NVIDIA L40", "NVIDIA L40S", "NVIDIA A40",
    "NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB",
    "NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA B200",
    "AMD Instinct MI300X OAM",
]
DEFAULT_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
WORKSPACE = "/workspace"  # where the pod's persistent volume is mounted
GRAPHQL_URL = "https://api.runpod.io/graphql"  # what the SDK posts to; the pod's self-stop fallback too
SECRET_ENV = ("RUNPOD_API_KEY", "WANDB_API_KEY")
OVERRIDE = re.compile(r"--([A-Za-z_]\w*)=(.*)", re.DOTALL)  # configurator.py's --key=value


class ServiceError(Exception):
    """A failure whose message names the problem and the fix; main() prints it and exits 1."""


def redact(text):
    """Return text with the values of the secret environment variables replaced by <redacted>."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "<redacted>")
    return text


def require_env(name, where):
    """Return the environment variable `name`, or raise ServiceError saying where to get one."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ServiceError(f"{name} is not set: get one at {where} and run `export {name}=...`")
    return value


def check_gpu_type(gpu_type, skip=False):
    """Return RunPod's spelling of gpu_type (matched case-insensitively against KNOWN_GPU_TYPES).

    Raises ServiceError with the closest known ids when it is unknown, unless skip is set (RunPod still checks
    the id live when the pod is created)."""
    known = {g.lower(): g for g in KNOWN_GPU_TYPES}
    if gpu_type.lower() in known:
        return known[gpu_type.lower()]
    if skip and re.fullmatch(r"[\w .()-]+", gpu_type):
        return gpu_type
    close = [known[g] for g in difflib.get_close_matches(gpu_type.lower(), known, n=3, cutoff=0.5)]
    hint = f" Did you mean: {', '.join(repr(g) for g in close)}?" if close else ""
    raise ServiceError(f"unknown GPU type {gpu_type!r}.{hint} `python runpod_service.py gpus` lists the live "
                       "ids; pass --skip-gpu-check for one that RunPod lists but this script does not know yet.")


def git(*args):
    """Run git in the current directory and return its stdout (trailing whitespace removed); raise ServiceError
    if it fails."""
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServiceError(f"`git {' '.join(args)}` failed: {proc.stderr.strip()} (run this from the repository)")
    return proc.stdout.rstrip()


def uncommitted_paths():
    """Paths that `git status --porcelain` reports: changes the pod would not see."""
    return [line[3:] for line in git("status", "--porcelain").splitlines()]


def is_pushed():
    """True when HEAD is contained in some remote-tracking branch, so a fresh clone can check it out."""
    return bool(git("branch", "-r", "--contains", "HEAD"))


def origin_url():
    """The url of the remote `origin`, which the pod clones."""
    if "origin" not in git("remote").split():
        raise ServiceError("this repository has no remote 'origin' for the pod to clone: add one "
                           "(`git remote add origin URL`) and push, or pass --repo-url")
    return git("remote", "get-url", "origin")


def clone_url(url):
    """Return an https form of a GitHub-style ssh remote (the pod has no ssh key); other urls unchanged."""
    m = re.fullmatch(r"(?:ssh://)?git@([^:/]+)[:/](.+)", url)
    return f"https://{m.group(1)}/{m.group(2)}" if m else url


def printable_url(url):
    """Return url without any user:token@ part, for printing."""
    return re.sub(r"//[^/@]+@", "//<redacted>@", url)


def assigned_names(path):
    """Names assigned at module level in a Python file (what configurator.py lets --key=value override)."""
    names = set()

    def visit(stmts):
        for s in stmts:
            targets = s.targets if isinstance(s, ast.Assign) else [s.target] if isinstance(s, ast.AnnAssign) else []
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            for block in ("body", "orelse", "finalbody"):
                if isinstance(s, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                    visit(getattr(s, block, []))
            for h in getattr(s, "handlers", []):
                visit(h.body)

    with open(path) as f:
        visit(ast.parse(f.read(), path).body)
    return names


def config_literal(path, key):
    """The literal value a Python file (a config, train.py) assigns to `key` at module level, or None."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    value = None
    for s in tree.body:
        if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == key for t in s.targets):
            try:
                value = ast.literal_eval(s.value)
            except ValueError:
                value = None
    return value


def default_setting(root, config, key):
    """What `key` is before any --key=value: the config file's literal value, else train.py's, else None."""
    value = config_literal(os.path.join(root, config), key)
    return value if value is not None else config_literal(os.path.join(root, "train.py"), key)


def override_value(raw):
    """A --key=value value as configurator.py reads it: a Python literal if it parses, else the string."""
    try:
        return ast.literal_eval(raw)
    except (SyntaxError, ValueError):
        return raw


def split_overrides(argv, own_options):
    """Split `train` arguments into (this script's arguments, train.py's --key=value overrides in order).

    An override is a --key=value token whose --key is not an option of this script. (argparse cannot take them:
    it reads a token with a space in it as a positional.)"""
    ours, overrides = [], []
    for arg in argv:
        m = OVERRIDE.fullmatch(arg)
        if m and f"--{m.group(1)}" not in own_options:
            if f"--{m.group(1).replace('_', '-')}" in own_options:
                raise ServiceError(f"{arg.split('=')[0]} is not a train.py setting: did you mean "
                                   f"--{m.group(1).replace('_', '-')} (an option of runpod_service.py)?")
            overrides.append((m.group(1), m.group(2)))
        else:
            ours.append(arg)
    return ours, overrides


def self_stop_lines(on_exit):
    """Bash lines by which a pod stops or terminates itself: runpodctl, which RunPod installs in every pod with a
    pod-scoped RUNPOD_API_KEY, else the GraphQL API with that key."""
    if on_exit == "none":
        return ['echo "[runpod_service] --on-exit none: the pod keeps running, and costing, until you stop it"']
    ctl, field = {"stop": ("stop", 'podStop(input: {podId: \\"$RUNPOD_POD_ID\\"}) { id }'),
                  "terminate": ("remove", 'podTerminate(input: {podId: \\"$RUNPOD_POD_ID\\"})')}[on_exit]
    body = '{"query": "mutation { %s }"}' % field  # JSON; bash expands $RUNPOD_POD_ID inside double quotes
    body = '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return [
        'if [ -z "${RUNPOD_POD_ID:-}" ]; then',
        f'  echo "[runpod_service] RUNPOD_POD_ID is not set, so the pod cannot {on_exit} itself: do it yourself"',
        "else",
        f'  echo "[runpod_service] asking RunPod to {on_exit} pod $RUNPOD_POD_ID"',
        f'  runpodctl {ctl} pod "$RUNPOD_POD_ID" ||',
        f'    curl -fsS -o /dev/null -X POST {GRAPHQL_URL} -H "Content-Type: application/json" '
        f'-H "Authorization: Bearer ${{RUNPOD_API_KEY:-}}" --data {body} ||',
        f'    echo "[runpod_service] could not {on_exit} pod $RUNPOD_POD_ID: do it yourself, it costs money"',
        "fi",
    ]


def start_script(repo_url, commit, train_argv, run_name, on_exit, prepare=None, workspace=WORKSPACE):
    """The bash script the pod runs: clone, check out `commit`, install, train (output to the container log and
    <workspace>/<run_name>/train.log), record the exit status, then stop / terminate the pod (`on_exit`), whether
    training passed or failed. A resumed pod does not train again. Every value from the user is shlex-quoted.
    `prepare` is a data/<name>/prepare.py to run first when its train.bin is missing."""
    q = shlex.quote
    lines = [
        "set -uo pipefail",
        f"RUN_DIR={q(workspace + '/' + run_name)}",
        'mkdir -p "$RUN_DIR"',
        'if [ -f "$RUN_DIR/exit_status" ]; then',
        '  echo "[runpod_service] this run ended before (exit status $(cat "$RUN_DIR/exit_status")); '
        'not training again. Stop the pod when you are done."',
        "  exec sleep infinity",
        "fi",
        "(",
        "  set -e",
        f'  [ -d "$RUN_DIR/repo/.git" ] || git clone {q(repo_url)} "$RUN_DIR/repo"',
        '  cd "$RUN_DIR/repo"',
        f"  git checkout --quiet --detach {q(commit)}",
        "  python -m pip install -r requirements-dev.txt",
    ]
    if prepare:
        lines.append(f"  [ -f {q(os.path.dirname(prepare) + '/train.bin')} ] || python {q(prepare)}")
    lines += [
        f"  {shlex.join(train_argv)}",
        ') 2>&1 | tee -a "$RUN_DIR/train.log"',
        "status=${PIPESTATUS[0]}",
        'echo "$status" > "$RUN_DIR/exit_status"',
        'echo "[runpod_service] training exited with status $status (log: $RUN_DIR/train.log)" '
        '| tee -a "$RUN_DIR/train.log"',
        *self_stop_lines(on_exit),
        "exec sleep infinity",
    ]
    return "\n".join(lines) + "\n"


def wandb_url(entity, project, run_id):
    """The W&B page of a run; without an entity, the URL with a placeholder the user fills in."""
    return f"https://wandb.ai/{entity or '<your-entity>'}/{project}/runs/{run_id}"


def new_run_id():
    """An 8-character W&B run id made here, offline. It starts with a letter so that configurator.py reads it
    as a string (an all-digit id, or one like '1234e567', would parse as a number)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return secrets.choice(alphabet[:26]) + "".join(secrets.choice(alphabet) for _ in range(7))


def check_committed():
    """Raise ServiceError when the working tree has changes: the pod runs a clean checkout of HEAD."""
    dirty = uncommitted_paths()
    if dirty:
        raise ServiceError(f"uncommitted changes ({', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}): the "
                           "pod runs a clean checkout of HEAD, so commit (or stash) them and push first")


def check_pushed():
    """Raise ServiceError when HEAD is on no remote branch: the pod clones the remote."""
    if not is_pushed():
        raise ServiceError("HEAD is on no remote branch, so the pod could not check it out: `git push` first")


def train_overrides(root, config, overrides, args, run_id):
    """The full --key=value list for train.py: the user's overrides in order, then ours (out_dir on the volume and
    the W&B settings) for the keys the user did not set. Returns (overrides, run_name, W&B project or None if
    wandb_log is off, run_id). Raises ServiceError for a key that train.py and the config do not define."""
    user = dict(overrides)
    cfg = os.path.join(root, config)
    wandb_log = override_value(user["wandb_log"]) if "wandb_log" in user else True
    project = (override_value(user["wandb_project"]) if "wandb_project" in user else None) or args.wandb_project \
        or default_setting(root, config, "wandb_project") or "nanoGPT-DAG"
    run_id = str(override_value(user["wandb_run_id"])) if "wandb_run_id" in user else run_id
    run_name = args.name or f"{os.path.splitext(os.path.basename(config))[0]}-{run_id}"
    if not re.fullmatch(r"[A-Za-z][\w.-]*", run_name):
        raise ServiceError(f"--name {run_name!r}: use a letter then letters, digits, '_', '.' or '-'")
    ours = {"out_dir": f"{WORKSPACE}/out-{run_name}"}
    if wandb_log:
        ours.update(wandb_log="True", wandb_project=str(project), wandb_run_name=run_name, wandb_run_id=run_id)
    final = overrides + [(k, v) for k, v in ours.items() if k not in user]
    settings = assigned_names(os.path.join(root, "train.py")) | assigned_names(cfg)
    unknown = sorted({k for k, _ in final} - settings)
    if unknown:
        close = {k: difflib.get_close_matches(k, settings, n=1) for k in unknown}
        hints = ", ".join(f"--{k}" + (f" (did you mean --{c[0]}?)" if c else "") for k, c in close.items())
        raise ServiceError(f"train.py and {config} have no setting {hints}; configurator.py would reject it on the pod")
    return final, run_name, (str(project) if wandb_log else None), run_id


def plan_training(args, overrides):
    """Check everything that can be checked offline and return the launch plan as a dict: name, gpu_type, spec
    (keyword arguments of runpod.create_pod, secrets included), script, url, wandb_url, entity, warnings. A dry run turns the readiness checks (keys, clean tree, pushed commit) into warnings."""
    warnings = []

    def ready(check):
        try:
            return check()
        except ServiceError as e:
            if not args.dry_run:
                raise
            warnings.append(f"a real launch would stop here: {e}")

    gpu_type = check_gpu_type(args.gpu_type, args.skip_gpu_check)
    if args.gpu_count < 1:
        raise ServiceError(f"--gpu-count must be at least 1, got {args.gpu_count}")
    if not re.fullmatch(r"[\w./:@-]+", args.image):
        raise ServiceError(f"--image {args.image!r} is not a container image name")
    root = git("rev-parse", "--show-toplevel")
    config = os.path.relpath(os.path.realpath(args.config), os.path.realpath(root))
    if config.startswith("..") or not os.path.isfile(os.path.join(root, config)):
        raise ServiceError(f"config file {args.config!r} is not a file inside the repository {root}")
    if not os.path.isfile(os.path.join(root, "train.py")):
        raise ServiceError(f"no train.py at the repository root {root}: run this from a nanoGPT-DAG checkout")
    final, run_name, project, run_id = train_overrides(root, config, overrides, args, new_run_id())
    launcher = ["python"] if args.gpu_count == 1 else ["torchrun", "--standalone", f"--nproc_per_node={args.gpu_count}"]
    train_argv = launcher + ["train.py", config] + [f"--{k}={v}" for k, v in final]
    dataset = dict(final).get("dataset")
    dataset = override_value(dataset) if dataset is not None else default_setting(root, config, "dataset")
    prepare = f"data/{dataset}/prepare.py" if isinstance(dataset, str) and re.fullmatch(r"[\w.-]+", dataset) else None
    if prepare and not os.path.isfile(os.path.join(root, prepare)):
        prepare = None

    ready(check_committed)
    ready(check_pushed)
    url = args.repo_url or clone_url(origin_url())
    entity = args.wandb_entity or os.environ.get("WANDB_ENTITY")
    env = {"PYTHONUNBUFFERED": "1"}
    if project:
        env["WANDB_API_KEY"] = ready(lambda: require_env("WANDB_API_KEY", "https://wandb.ai/authorize")) or ""
        if entity:
            env["WANDB_ENTITY"] = entity
    ready(lambda: require_env("RUNPOD_API_KEY", "https://www.runpod.io/console/user/settings"))

    script = start_script(url, git("rev-parse", "HEAD"), train_argv, run_name, args.on_exit, prepare)
    spec = dict(name=f"nanogpt-dag-{run_name}", image_name=args.image, gpu_type_id=gpu_type,
                gpu_count=args.gpu_count, cloud_type=args.cloud, volume_in_gb=args.volume_gb,
                container_disk_in_gb=args.disk_gb, volume_mount_path=WORKSPACE,
                docker_args=shlex.join(["bash", "-c", script]), env=env)
    return dict(name=run_name, gpu_type=gpu_type, spec=spec, script=script, url=url,
                wandb_url=wandb_url(entity, project, run_id) if project else None, entity=entity,
                warnings=warnings)


# --------------------------------------------------------------------------------------------------------------
# RunPod API (the SDK's GraphQL calls; errors become ServiceError)

def runpod_api():
    """Import the runpod SDK (heavy, so only here) with RUNPOD_API_KEY as its key; raise before any request
    when the key is missing."""
    key = require_env("RUNPOD_API_KEY", "https://www.runpod.io/console/user/settings")
    import runpod
    runpod.api_key = key  # stop_pod / terminate_pod / create_pod take no key argument: they read this
    return runpod


def api_call(fn, *args, **kwargs):
    """Call an SDK function and turn its failures into ServiceError with a redacted message."""
    import requests
    from runpod import error
    try:
        return fn(*args, **kwargs)
    except error.AuthenticationError:
        raise ServiceError("RunPod rejected the API key (HTTP 401): check RUNPOD_API_KEY, or create a new key "
                           "at https://www.runpod.io/console/user/settings") from None
    except error.QueryError as e:
        raise ServiceError(f"RunPod API error: {redact(str(e))}") from None
    except requests.RequestException as e:  # also a reply that is not JSON
        raise ServiceError(f"could not talk to the RunPod API ({GRAPHQL_URL}): {redact(str(e))}") from None
    except ValueError as e:  # the SDK's "No GPU found with the specified ID"
        raise ServiceError(f"RunPod: {redact(str(e))}; `python runpod_service.py gpus` lists the ids") from None
    except (KeyError, TypeError, IndexError) as e:  # a reply without the fields the SDK reads
        raise ServiceError(f"unexpected reply from the RunPod API ({type(e).__name__}: {redact(str(e))}); "
                           "try again, or check https://status.runpod.io") from None


def escape_graphql(s):
    """Escape s for a GraphQL string literal: the SDK pastes create_pod's strings between quotes unescaped."""
    return json.dumps(s)[1:-1]


def check_pod_id(pod_id):
    """Return pod_id if it looks like a RunPod pod id (the SDK pastes it into GraphQL unescaped)."""
    if not re.fullmatch(r"[A-Za-z0-9]+", pod_id):
        raise ServiceError(f"{pod_id!r} is not a pod id: ids are letters and digits, as `status` or the console shows")
    return pod_id


def print_plan(plan):
    """Print the pod spec (secrets redacted) and the start command."""
    spec = {k: v for k, v in plan["spec"].items() if k != "docker_args"}
    spec["env"] = {k: ("<redacted>" if v else "<not set>") if k in SECRET_ENV else v for k, v in spec["env"].items()}
    print("pod spec:")
    print(json.dumps(spec, indent=2))
    print(f"repository: {printable_url(plan['url'])}")
    print("start command (the pod runs it as `bash -c SCRIPT`):")
    print(redact(plan["script"].replace(plan["url"], printable_url(plan["url"]))), end="")


def print_wandb(plan):
    """Print the W&B run link, or why there is none."""
    if plan["wandb_url"] is None:
        print("W&B:        off (--wandb_log is false)")
        return
    print(f"W&B run:    {plan['wandb_url']}")
    if not plan["entity"]:
        print("            (fill in your W&B user or team, or pass --wandb-entity / set WANDB_ENTITY for a direct link)")


def cmd_train(args, overrides):
    """`train`: plan, then print it (--dry-run) or create the pod and print its id, GPU type and W&B link."""
    plan = plan_training(args, overrides)
    for w in plan["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if args.dry_run:
        print("dry run: nothing is launched and no network call is made")
        print_plan(plan)
        print(f"GPU type:   {plan['gpu_type']}")
        print_wandb(plan)
        return 0
    runpod = runpod_api()
    spec = dict(plan["spec"])
    spec["docker_args"] = escape_graphql(spec["docker_args"])
    spec["env"] = {k: escape_graphql(v) for k, v in spec["env"].items()}
    pod = api_call(runpod.create_pod, **spec)
    if not pod or not pod.get("id"):
        raise ServiceError(f"RunPod created no pod (reply: {redact(json.dumps(pod))}): there may be no "
                           f"{plan['gpu_type']} free right now; try another --gpu-type or --cloud")
    print(f"pod id:     {pod['id']}")
    print(f"GPU type:   {plan['gpu_type']}")
    print_wandb(plan)
    print(f"run name:   {plan['name']} (checkpoints: {WORKSPACE}/out-{plan['name']} on the pod's volume)")
    print(f"when training ends the pod will {'do nothing' if args.on_exit == 'none' else args.on_exit + ' itself'}"
          f" (--on-exit); watch it with `python runpod_service.py status {pod['id']}`")
    return 0


def cmd_gpus(args):
    """`gpus`: list RunPod's GPU type ids (the values --gpu-type takes)."""
    runpod = runpod_api()
    gpus = api_call(runpod.get_gpus)
    for g in sorted(gpus, key=lambda g: (g.get("memoryInGb") or 0, g["id"])):
        print(f"{g['id']:<40} {g.get('displayName', ''):<24} {g.get('memoryInGb', '?')} GB")
    return 0


def cmd_status(args):
    """`status POD_ID`: print a pod's state, GPU, cost and uptime (never its environment: it holds keys)."""
    runpod = runpod_api()
    pod = api_call(runpod.get_pod, check_pod_id(args.pod_id))
    if not pod:
        raise ServiceError(f"no pod {args.pod_id!r} on this account: see https://www.runpod.io/console/pods")
    gpu = (pod.get("machine") or {}).get("gpuDisplayName") or "?"
    print(f"pod id:     {pod['id']} ({pod.get('name')})")
    print(f"status:     {pod.get('desiredStatus')}")
    print(f"GPU:        {pod.get('gpuCount')} x {gpu}")
    print(f"image:      {pod.get('imageName')}")
    print(f"cost:       ${pod.get('costPerHr')}/hr")
    print(f"uptime:     {pod.get('uptimeSeconds')} s")
    return 0


def cmd_stop(args):
    """`stop POD_ID`: stop a pod; its volume (and the checkpoints on it) is kept."""
    runpod = runpod_api()
    pod = api_call(runpod.stop_pod, check_pod_id(args.pod_id))
    print(f"pod {args.pod_id}: {(pod or {}).get('desiredStatus', 'stop requested')}")
    return 0


def cmd_terminate(args):
    """`terminate POD_ID`: delete a pod and its volume."""
    runpod = runpod_api()
    api_call(runpod.terminate_pod, check_pod_id(args.pod_id))
    print(f"pod {args.pod_id}: terminated")
    return 0


def make_parser():
    """The argparse parser with the train / gpus / status / stop / terminate subcommands."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", allow_abbrev=False, help="start a pod that runs train.py with a config",
                       description="Start a pod that runs `python train.py CONFIG --key=value ...`. Every "
                                   "--key=value that is not an option below is passed to train.py unchanged.")
    t.add_argument("config", help="config file, e.g. config/train_default.py")
    t.add_argument("--gpu-type", required=True, help="RunPod GPU type id, e.g. 'NVIDIA A100-SXM4-80GB' (see `gpus`)")
    t.add_argument("--gpu-count", type=int, default=1, help="GPUs on the pod; more than 1 trains with torchrun DDP")
    t.add_argument("--skip-gpu-check", action="store_true", help="allow a GPU type this script does not know")
    t.add_argument("--cloud", choices=["ALL", "SECURE", "COMMUNITY"], default="ALL")
    t.add_argument("--image", default=DEFAULT_IMAGE, help="container image (needs git, python, pip)")
    t.add_argument("--volume-gb", type=int, default=50, help=f"persistent volume at {WORKSPACE} (checkpoints)")
    t.add_argument("--disk-gb", type=int, default=50, help="container disk (pip packages)")
    t.add_argument("--repo-url", help="repository to clone (default: `git remote get-url origin`)")
    t.add_argument("--name", help="run name for W&B, the out_dir and the pod (default: <config>-<run id>)")
    t.add_argument("--wandb-project", help="default: the config's wandb_project, else nanoGPT-DAG")
    t.add_argument("--wandb-entity", help="W&B user or team (default: env WANDB_ENTITY), for the printed link")
    t.add_argument("--on-exit", choices=["stop", "terminate", "none"], default="stop",
                   help="what the pod does to itself when training ends: stop keeps the volume, terminate "
                        "deletes it (and the checkpoints), none keeps the GPU running")
    t.add_argument("--dry-run", action="store_true", help="print the pod spec and start command, launch nothing")
    sub.add_parser("gpus", help="list RunPod GPU type ids")
    for name, what in [("status", "show a pod"), ("stop", "stop a pod (keeps its volume)"),
                       ("terminate", "delete a pod and its volume")]:
        sub.add_parser(name, help=what).add_argument("pod_id")
    return parser, t


def main(argv=None):
    """Run the command line; return the exit status (0 on success, 1 on any failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, train_parser = make_parser()
    try:
        overrides = []
        if argv[:1] == ["train"]:
            own = {s for a in train_parser._actions for s in a.option_strings}
            rest, overrides = split_overrides(argv[1:], own)
            argv = ["train"] + rest
        args = parser.parse_args(argv)
        if args.command == "train":
            return cmd_train(args, overrides)
        return {"gpus": cmd_gpus, "status": cmd_status, "stop": cmd_stop, "terminate": cmd_terminate}[args.command](args)
    except ServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
