"""Fault injection against a real `bijou serve` (Ray Serve, every deployment) on a copy of a
data folder, and against `bijou index`. Each fault says what was acknowledged, what was lost,
the requests that failed and how long recovery took.

    python bench/faults.py [--data var] [--seconds 40] [--json OUT] [--only crash,sigterm,index]
    python bench/faults.py --only replicas --seconds 420 [--chats 4] [--agent-replicas 2]

crash    while upserts, cart additions and chats run, every process of the server gets
         SIGKILL (kill -9 of its process group and of every process it started); then a
         restart on the same folder: each acknowledged upsert and cart line must be there,
         and the index must open as it is (no rebuild, no re-encoding).
sigterm  SIGTERM to `bijou serve` (what docker stop and Kubernetes send) while a chat turn
         is in flight: the turn must finish, the server must exit, and no process it started
         (raylet, gcs, ray::DashboardAgent, ray::RuntimeEnvAgent, replicas) may be left.
index    `bijou index` on a 1,500-product catalog killed (SIGKILL) midway: `bijou serve`'s
         readiness must not report a part-built index; the next `bijou index` resumes.
replicas while `bench/load.py` runs (chats, searches, voice) and shoppers add to their carts
         and ask "cheaper", one replica of each deployment in turn is killed with Ray's own
         API (`ray.kill` on the replica actor): Serve must replace it; per kill, the failed
         requests, the time until the replacement is running, and any acknowledged cart line
         or dialog state that a later answer no longer has.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIJOU = [str(Path(sys.executable).parent / "bijou")]  # the console script beside python
SERVE_YAML = ROOT / "bijou" / "serve" / "serve.yaml"
ADMIN_KEY = "fault-bench-key"
PORT = 18_731
APP = "bijou"
KILLED = ("Ingress", "Agent", "Retriever", "TextEncoder", "ImageEncoder", "SpeechToText", "TryOn")
KINDS = ("chat", "search", "voice")  # load.py's request kinds
LOAD_FIELDS = ("completed", "errors", "p50_ms", "p95_ms", "error_examples")


# --- processes -----------------------------------------------------------------------------
def _parents() -> dict[int, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(pid: int) -> set[int]:
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        children = {p for p, parent in parents.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> dict[int, str]:
    """pid -> command line of those still running (zombies are not running)."""
    left = {}
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                left[pid] = args.decode(errors="replace").strip()[:120]
        except OSError:
            continue
    return left


@dataclass
class Server:
    data_dir: Path
    log: Path
    env: dict[str, str]
    serve_yaml: Path | None = None  # a Ray Serve YAML instead of the shipped one
    process: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts it and waits until ready; the seconds that took."""
        start = time.monotonic()
        out = self.log.open("a")
        chosen = ["--config", str(self.serve_yaml)] if self.serve_yaml else []
        self.process = subprocess.Popen(
            [*BIJOU, "serve", "--port", str(PORT), *chosen],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        while time.monotonic() - start < 900:
            if self.process.poll() is not None:
                raise RuntimeError(f"bijou serve exited with {self.process.returncode}: {self.log}")
            try:
                if httpx.get(f"{url()}/readyz", timeout=5).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError("bijou serve was not ready in 15 minutes")

    def kill9(self) -> int:
        """SIGKILL to the server and to every process it started, all at once; their count."""
        assert self.process is not None
        everyone = descendants(self.process.pid) | {self.process.pid}
        for pid in everyone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(everyone)

    def reap(self) -> None:
        assert self.process is not None
        self.process.wait()
        time.sleep(2)  # the kernel frees the ports and file locks


def url() -> str:
    return f"http://127.0.0.1:{PORT}"


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "BIJOU__DATA_DIR": str(data_dir),
        "BIJOU__SERVE__ADMIN_API_KEY": ADMIN_KEY,
        "BIJOU__SERVE__RATE_LIMIT__ENABLED": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }


def copy_data(source: Path, target: Path) -> None:
    """The index and memory copied (the fault may break them), the models linked."""
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name == "models" or entry.is_symlink():
            (target / entry.name).symlink_to(entry.resolve())
        elif entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        elif entry.suffix not in (".log",):
            shutil.copy2(entry, target / entry.name)


# --- the crash -------------------------------------------------------------------------------
@dataclass
class Acks:
    upserts: list[str] = field(default_factory=list)
    cart: list[tuple[str, str]] = field(default_factory=list)  # session, product id
    chats: list[str] = field(default_factory=list)  # sessions with an answered turn
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failed.append(what)


def _upserts(client: httpx.Client, acks: Acks, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        pid = f"fault-{os.getpid()}-{n}"
        product = {
            "id": pid, "title": f"Fault Test Band {n}", "article": "Ring", "colour": "Silver",
            "price": 100 + n, "list_price": 200 + n,
        }  # fmt: skip
        try:
            answer = client.post(
                "/v1/admin/products", json={"upsert": [product]}, headers={"X-API-Key": ADMIN_KEY}
            )
            if answer.status_code == 200 and answer.json()["upserted"] == 1:
                acks.upserts.append(pid)
            else:
                acks.fail(f"upsert {answer.status_code}")
        except httpx.HTTPError as error:
            acks.fail(f"upsert: {type(error).__name__}")
        n += 1


def _carts(client: httpx.Client, acks: Acks, stop: threading.Event, products: list[str]) -> None:
    n = 0
    while not stop.is_set():
        try:
            session = client.post("/v1/sessions", json={}).json()["session_id"]
            product = products[n % len(products)]
            answer = client.post(f"/v1/sessions/{session}/cart", json={"product_id": product})
            if answer.status_code == 200:
                acks.cart.append((session, product))
            else:
                acks.fail(f"cart {answer.status_code}")
        except (httpx.HTTPError, KeyError, ValueError) as error:
            acks.fail(f"cart: {type(error).__name__}")
        n += 1


def _reply(answer: httpx.Response) -> dict | None:
    """The `reply` event of a chat stream read whole."""
    event = ""
    for line in answer.text.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "reply":
            return json.loads(line[6:])
    return None


def _chats(client: httpx.Client, acks: Acks, stop: threading.Event) -> None:
    messages = ["silver earrings under 2000", "cheaper", "a gold necklace", "show me watches"]
    n = 0
    while not stop.is_set():
        try:
            answer = client.post("/v1/chat", json={"message": messages[n % len(messages)]})
            reply = _reply(answer) if answer.status_code == 200 else None
            if reply is not None:
                acks.chats.append(reply["session_id"])
            else:
                acks.fail(f"chat {answer.status_code}")
        except (httpx.HTTPError, ValueError) as error:
            acks.fail(f"chat: {type(error).__name__}")
        n += 1


def crash(data: Path, work: Path, seconds: float) -> dict:
    data_dir = work / "crash-data"
    copy_data(data, data_dir)
    server = Server(data_dir, work / "crash.log", server_env(data_dir))
    first_ready = server.start()
    manifest = data_dir / "index" / "manifest.json"
    manifest_before = manifest.read_bytes() if manifest.is_file() else b""
    with httpx.Client(base_url=url(), timeout=120) as client:
        found = client.post("/v1/search", data={"text": "silver ring", "top_k": 5}).json()
        products = [r["id"] for r in found["results"]]
        acks, stop = Acks(), threading.Event()
        workers = [
            threading.Thread(target=_upserts, args=(client, acks, stop)),
            threading.Thread(target=_carts, args=(client, acks, stop, products)),
            threading.Thread(target=_chats, args=(client, acks, stop)),
        ]
        for worker in workers:
            worker.start()
        time.sleep(seconds)
        killed = server.kill9()  # mid-flight: the workers are still sending
        stop.set()
        for worker in workers:
            worker.join()
        server.reap()
    log_before = server.log.read_text(errors="replace")
    recovery = server.start()
    log_after = server.log.read_text(errors="replace")[len(log_before) :]
    lost: dict[str, list] = {"upserts": [], "cart": [], "sessions": []}
    with httpx.Client(base_url=url(), timeout=120) as client:
        for pid in acks.upserts:
            if client.get(f"/v1/products/{pid}").status_code != 200:
                lost["upserts"].append(pid)
        for session, product in acks.cart:
            answer = client.get(f"/v1/sessions/{session}/cart")
            ids = [i["id"] for i in answer.json().get("items", [])] if answer.is_success else []
            if product not in ids:
                lost["cart"].append(session)
        for session in acks.chats:
            if client.get(f"/v1/sessions/{session}/cart").status_code != 200:
                lost["sessions"].append(session)
        follow = client.post("/v1/chat", json={"session_id": acks.chats[-1], "message": "cheaper"})
        continued = follow.status_code == 200 and "event: reply" in follow.text
        # The acknowledged test products go again (an idempotent delete).
        client.post(
            "/v1/admin/products",
            json={"delete": acks.upserts[:10_000]},
            headers={"X-API-Key": ADMIN_KEY},
        )
    server.kill9()
    server.reap()
    return {
        "first_start_s": round(first_ready, 1),
        "load_seconds_before_kill": seconds,
        "processes_killed": killed,
        "acknowledged": {
            "upserts": len(acks.upserts),
            "cart_lines": len(acks.cart),
            "chat_turns": len(acks.chats),
        },
        # A request cut by the kill fails (RemoteProtocolError, ReadError); the ones sent
        # after it find no server (ConnectError) until the workers see the stop.
        "failed_in_flight": sum("ConnectError" not in f for f in acks.failed),
        "refused_while_down": sum("ConnectError" in f for f in acks.failed),
        "failed_examples": sorted(set(acks.failed))[:5],
        "lost": {k: len(v) for k, v in lost.items()},
        "lost_examples": {k: v[:3] for k, v in lost.items()},
        "recovery_to_ready_s": round(recovery, 1),
        "index_rebuilt_on_restart": "unchanged" in log_after or "added" in log_after,
        "manifest_unchanged": manifest.read_bytes() == manifest_before,
        "conversation_continues_after_restart": continued,
    }


# --- SIGTERM ---------------------------------------------------------------------------------
def sigterm(data: Path, work: Path) -> dict:
    data_dir = work / "sigterm-data"
    copy_data(data, data_dir)
    server = Server(data_dir, work / "sigterm.log", server_env(data_dir))
    server.start()
    assert server.process is not None
    started = descendants(server.process.pid)
    turn: dict = {}

    on_agent = threading.Event()

    def chat() -> None:
        try:
            with httpx.Client(base_url=url(), timeout=300) as client:
                body = {"message": "gold earrings for a wedding"}
                with client.stream("POST", "/v1/chat", json=body) as answer:
                    turn["status"] = answer.status_code
                    text = ""
                    for piece in answer.iter_text():
                        text += piece
                        # The session event comes once the Agent has begun the turn.
                        if "event: session" in text:
                            on_agent.set()
                    turn["reply"] = "event: reply" in text
                    turn["error_event"] = "event: error" in text
        except httpx.HTTPError as error:
            turn["error"] = type(error).__name__
        finally:
            on_agent.set()

    worker = threading.Thread(target=chat)
    worker.start()
    on_agent.wait(timeout=300)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    worker.join()
    code = server.process.wait(timeout=300)
    exit_s = time.monotonic() - signalled
    time.sleep(3)
    left = alive(started)
    for pid in left:  # tidy up for the next fault
        os.kill(pid, signal.SIGKILL)
    return {
        "processes_started": len(started),
        "in_flight_turn": turn,
        "exit_code": code,
        "exit_after_s": round(exit_s, 1),
        "processes_left": len(left),
        "left_examples": list(left.values())[:5],
    }


# --- replica loss under load ---------------------------------------------------------------
@dataclass
class Shoppers:
    """What the shopper worker saw: acknowledged cart lines, and each later answer checked."""

    cart: list[tuple[str, str]] = field(default_factory=list)  # session, product id
    turns: int = 0
    failed: list[tuple[float, str]] = field(default_factory=list)  # wall-clock time, what
    state_lost: list[tuple[float, str]] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failed.append((time.time(), what))


def _shoppers(
    client: httpx.Client, seen: Shoppers, stop: threading.Event, products: list[str]
) -> None:
    """One shopper after another: a cart line through the API, then two chat turns in that
    session. After each the cart must still hold the line (the Agent replica answering may be
    a new one: the state is in the session store), and a bare "cheaper" must go below the
    cheapest product of the turn before (the dialog state carried over)."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            created = client.post("/v1/sessions", json={})
            if created.status_code != 200:
                seen.fail(f"session {created.status_code}")
                continue
            session = created.json()["session_id"]
            product = products[n % len(products)]
            added = client.post(f"/v1/sessions/{session}/cart", json={"product_id": product})
            if added.status_code != 200:
                seen.fail(f"cart {added.status_code}")
                continue
            seen.cart.append((session, product))
            shown: list[float] = []
            for message in ("silver earrings under 2000", "cheaper"):
                answer = client.post("/v1/chat", json={"session_id": session, "message": message})
                reply = _reply(answer) if answer.status_code == 200 else None
                if reply is None:
                    seen.fail(f"chat {answer.status_code}")
                    break
                seen.turns += 1
                prices = [p["price"] for p in reply["products"]]
                # Nothing cheaper exists when the search had to relax: no claim to check.
                went_up = shown and not reply["relaxed"] and any(p >= min(shown) for p in prices)
                cart = client.get(f"/v1/sessions/{session}/cart")
                if reply["session_id"] != session:
                    seen.state_lost.append((time.time(), "a new session answered"))
                elif cart.is_success and product not in [i["id"] for i in cart.json()["items"]]:
                    seen.state_lost.append((time.time(), f"after {message!r}: cart line gone"))
                elif message == "cheaper" and went_up:
                    seen.state_lost.append((time.time(), "'cheaper' did not read the last turn"))
                shown = prices
        except (httpx.HTTPError, KeyError, ValueError) as error:
            seen.fail(f"shopper: {type(error).__name__}")


def _replicas_of(deployment: str) -> list[str]:
    import ray

    prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
    return sorted(
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(prefix)
    )  # fmt: skip


def _recovered(deployment: str, before: list[str]) -> bool:
    """A new replica has taken the killed one's place (Serve's own count lags a kill, so the
    replicas are read by name) and Serve calls the deployment healthy."""
    from ray import serve

    status = serve.status().applications[APP].deployments[deployment]
    alive = _replicas_of(deployment)
    replaced = bool(set(alive) - set(before)) and before[0] not in alive
    return status.status == "HEALTHY" and len(alive) >= len(before) and replaced


def with_agents(replicas: int, out: Path) -> Path:
    """The shipped Serve YAML with ``replicas`` Agents sharing the shipped Agent's CPU share
    (Ray places replicas by their shares: on 2 cores two whole shares leave the Ingress
    none)."""
    app = yaml.safe_load(SERVE_YAML.read_text())
    for deployment in app["applications"][0]["deployments"]:
        if deployment["name"] == "Agent":
            deployment["num_replicas"] = replicas
            options = deployment["ray_actor_options"]
            options["num_cpus"] = round(options["num_cpus"] / replicas, 3)
    out.write_text(yaml.safe_dump(app, sort_keys=False))
    return out


def replica_loss(data: Path, work: Path, seconds: float, chats: int, agents: int = 1) -> dict:
    import ray

    data_dir = work / "replicas-data"
    copy_data(data, data_dir)
    serve_yaml = with_agents(agents, work / "serve.yaml") if agents > 1 else None
    server = Server(data_dir, work / "replicas.log", server_env(data_dir), serve_yaml)
    first_ready = server.start()
    ray.init(address="auto", namespace="serve", log_to_driver=False)
    from ray import serve

    deployments = [d for d in KILLED if d in serve.status().applications[APP].deployments]
    load_json = work / "load.json"
    load_began = time.time()
    load = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--url", url(), "--chat", str(chats),
         "--search", "2", "--voice", "1", "--seconds", str(seconds), "--json", str(load_json)],
        stdout=(work / "load.log").open("w"), stderr=subprocess.STDOUT, env=server_env(data_dir),
    )  # fmt: skip
    kills: list[dict] = []
    with httpx.Client(base_url=url(), timeout=180) as client:
        found = client.post("/v1/search", data={"text": "silver ring", "top_k": 5}).json()
        products = [r["id"] for r in found["results"]]
        seen, stop = Shoppers(), threading.Event()
        worker = threading.Thread(target=_shoppers, args=(client, seen, stop, products))
        worker.start()
        gap = seconds / (len(deployments) + 1)  # the kills spread over the load, a gap apart
        for n, deployment in enumerate(deployments, start=1):
            time.sleep(max(0.0, load_began + n * gap - time.time()))
            replicas = _replicas_of(deployment)  # the first one is killed
            killed_at = time.time()
            ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
            while not _recovered(deployment, replicas) and time.time() - killed_at < 600:
                time.sleep(0.5)
            kills.append({
                "deployment": deployment, "at": killed_at,
                "recovered_s": round(time.time() - killed_at, 1),
            })  # fmt: skip
        load.wait()
        stop.set()
        worker.join()
        lost_cart = []
        for session, product in seen.cart:
            answer = client.get(f"/v1/sessions/{session}/cart")
            if not answer.is_success or product not in [i["id"] for i in answer.json()["items"]]:
                lost_cart.append(session)
    ray.shutdown()
    server.kill9()
    server.reap()
    report = json.loads(load_json.read_text())
    failures = [(t, kind, what) for kind in KINDS for t, what in report[kind]["error_at"]]
    failures += [(t, "shopper", what) for t, what in seen.failed]
    first = kills[0]["at"]
    before = [kind for t, kind, _ in failures if t < first]
    ends = [k["at"] for k in kills[1:]] + [float("inf")]
    for kill, end in zip(kills, ends, strict=True):
        # A request fails in the kill's window: from the kill until the next one.
        window = [(kind, what) for t, kind, what in failures if kill["at"] <= t < end]
        kinds = [kind for kind, _ in window]
        kill["failed_requests"] = {k: kinds.count(k) for k in sorted(set(kinds))}
        kill["failures"] = dict(Counter(what for _, what in window))
        kill["state_lost"] = sum(kill["at"] <= t < end for t, _ in seen.state_lost)
        kill["at_s"] = round(kill.pop("at") - load_began, 1)
    return {
        "first_start_s": round(first_ready, 1),
        "load": {kind: {k: report[kind][k] for k in LOAD_FIELDS} for kind in KINDS},
        "shoppers": {
            "cart_lines_acknowledged": len(seen.cart),
            "chat_turns_answered": seen.turns,
            "failed": len(seen.failed),
            "failed_examples": sorted({what for _, what in seen.failed})[:5],
            "state_lost": len(seen.state_lost),
            "state_lost_examples": sorted({what for _, what in seen.state_lost})[:5],
            "cart_lines_lost_at_the_end": len(lost_cart),
        },
        "failed_before_the_first_kill": {k: before.count(k) for k in sorted(set(before))},
        "kills": kills,
    }


# --- bijou index killed ---------------------------------------------------------------------
def index_kill(work: Path, products: int = 1500) -> dict:
    from bijou.catalog.loader import BUNDLED_IMAGES, load_catalog

    folder = work / "index-catalog"
    folder.mkdir()
    chosen = [p for p in load_catalog().products if p.image][:products]
    with gzip.open(folder / "products.jsonl.gz", "wt", encoding="utf-8") as out:
        for product in chosen:
            out.write(product.model_dump_json() + "\n")
    with zipfile.ZipFile(BUNDLED_IMAGES) as src, zipfile.ZipFile(folder / "images.zip", "w") as dst:
        for product in chosen:
            dst.writestr(product.image, src.read(product.image))
    data_dir = work / "index-data"
    data_dir.mkdir()
    models = ROOT / "var" / "models"
    if models.exists():
        (data_dir / "models").symlink_to(models.resolve())
    env = server_env(data_dir, BIJOU__CATALOG__PATH=str(folder / "products.jsonl.gz"))
    log = (work / "index.log").open("a")
    start = time.monotonic()
    build = subprocess.Popen([*BIJOU, "index"], env=env, stdout=log, stderr=subprocess.STDOUT)
    manifest = data_dir / "index" / "manifest.json"
    while not manifest.is_file() and build.poll() is None:
        time.sleep(0.5)
    time.sleep(max(5.0, (time.monotonic() - start) * 0.5))  # into the encoding
    finished_before_kill = build.poll() is not None
    build.kill()
    build.wait()
    killed_at = time.monotonic() - start
    state = json.loads(manifest.read_text()) if manifest.is_file() else {}
    probe = subprocess.run(
        [sys.executable, "-c", "from bijou.config import load_config;"
         "from bijou.retrieval.search import SearchEngine;"
         "e = SearchEngine.load(load_config());"
         "print(e.index.serving, e.index.count())"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    serving, held = probe.stdout.split()[-2:]
    again = time.monotonic()
    rerun = subprocess.run([*BIJOU, "index"], env=env, capture_output=True, text=True)
    rerun_s = time.monotonic() - again
    after = subprocess.run(
        probe.args, env=env, capture_output=True, text=True, check=True
    ).stdout.split()[-2:]
    return {
        "catalog_products": len(chosen),
        "killed_after_s": round(killed_at, 1),
        "build_finished_before_kill": finished_before_kill,
        "manifest_complete_after_kill": state.get("complete"),
        "points_after_kill": int(held),
        "served_after_kill": serving == "True",
        "rerun_exit_code": rerun.returncode,
        "rerun_report": rerun.stderr.strip().splitlines()[-1:],
        "rerun_s": round(rerun_s, 1),
        "serving_after_rerun": after[0] == "True",
        "points_after_rerun": int(after[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "var")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--only", default="crash,sigterm,index", help="also: replicas")
    parser.add_argument("--chats", type=int, default=4, help="replicas: load.py's shoppers")
    parser.add_argument(
        "--agent-replicas", type=int, default=1, help="replicas: Agents (default: 1, as shipped)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bijou-faults-"))
    chosen = args.only.split(",")
    results: dict[str, dict] = {}
    try:
        if "crash" in chosen:
            results["crash"] = crash(args.data, work, args.seconds)
            print(json.dumps({"crash": results["crash"]}, indent=2), flush=True)
        if "sigterm" in chosen:
            results["sigterm"] = sigterm(args.data, work)
            print(json.dumps({"sigterm": results["sigterm"]}, indent=2), flush=True)
        if "index" in chosen:
            results["index"] = index_kill(work)
            print(json.dumps({"index": results["index"]}, indent=2), flush=True)
        if "replicas" in chosen:
            results["replicas"] = replica_loss(
                args.data, work, args.seconds, args.chats, args.agent_replicas
            )
            print(json.dumps({"replicas": results["replicas"]}, indent=2), flush=True)
    finally:
        print(f"logs in {work}" if args.keep else "", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
