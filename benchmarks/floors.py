"""Floors: what the work behind three of issue 32's figures costs, piece by piece, here.

Each section measures the parts of one command apart from each other (no other thread
competing for the GIL, no other process for the cores), with the library or system call
that does the work alone beside iotc's own code for it, and prints the sum against the
figure's bound. A sum of parts above the bound, each part at its floor, is the proof that
the bound cannot be met in one process on this machine; the sections say what more
processes would change.

    python benchmarks/floors.py validate --devices 100000      # figure 5: <= 4 s
    python benchmarks/floors.py plan --keep /tmp/pb             # figure 3: <= 3.5 s
    python benchmarks/floors.py create --devices 1000           # figure 2: <= 1.0 ms/device

`plan` serves the account `plan_bench.py --devices 100000 --templates 10 --keep DIR` built
(building it first when DIR holds none: about a minute).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import login, process_cpu, serve  # noqa: E402

from iotc_apply.cli import tune_gc  # noqa: E402

TEMPLATE = """apiVersion: iotc/v1
kind: Template
metadata: {name: floor01}
spec:
  name: Floor sensor
  authType: self-signed
  attributes: [{name: temperature, type: DECIMAL}]
"""


def best(fn: Callable[[], object], repeat: int, clock: Callable[[], float]) -> float:
    """The minimum over `repeat` runs of `fn`, on `clock` (a floor: noise only adds)."""
    times = []
    for _ in range(repeat):
        started = clock()
        fn()
        times.append(clock() - started)
    return min(times)


def row(label: str, value: float, unit: str = "s") -> None:
    print(f"  {label:<66} {value:8.3f} {unit}")


def verdict(total: float, bound: float, what: str) -> None:
    print(f"  {'= ' + what:<66} {total:8.3f} s  bound {bound:g} s, ratio {total / bound:.2f}")


# -- figure 5: validate 100,000 Device documents ------------------------------------------------


def validate(devices: int, repeat: int) -> None:
    import yaml
    from manifest_load import generate

    from iotc_apply.manifest import _document, load, spread
    from iotc_apply.manifest.checks import assemble
    from iotc_apply.manifest.files import discover
    from iotc_apply.manifest.kinds import Built
    from iotc_apply.manifest.yamlsafe import load_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "manifests"
        generate(folder, devices)
        texts = [p.read_text() for p in sorted(folder.glob("*.yaml"))]
        files, _ = discover([str(folder)])

        def events() -> None:
            for text in texts:
                parser = yaml.CSafeLoader(text)
                while parser.get_event() is not None:
                    pass
                parser.dispose()

        def pyyaml() -> None:
            for text in texts:
                list(yaml.load_all(text, yaml.CSafeLoader))

        builds: list[Built] = []

        def per_file() -> None:  # parse, check and build each file alone, as a worker would
            builds.clear()
            for mf in files:
                built = Built()
                docs, _ = load_file(mf.path, mf.shown)
                for doc in docs:
                    _document(doc, mf, built)
                builds.append(built)

        clock = time.process_time
        print(f"validate: {devices:,} Device documents in {len(texts)} files "
              f"(min of {repeat}, CPU)")
        parsed = best(events, repeat, clock)
        row("libyaml's events, nothing built (PyYAML's C parser)", parsed)
        row("PyYAML's own safe load (values only: no positions, checks)", best(pyyaml, repeat,
                                                                                clock))
        built = best(per_file, repeat, clock)
        row("iotc per file: events, values with positions, schema, build", built)
        merged = Built()
        for b in builds:
            for name in ("templates", "devices", "firmwares", "projects", "rollouts"):
                getattr(merged, name).extend(getattr(b, name))
        cross = best(lambda: assemble(merged), repeat, clock)
        row("iotc cross-document checks (assemble)", cross)
        spread.MIN_BYTES, shared = 1 << 62, spread.MIN_BYTES  # one process, for the floor
        whole = best(lambda: load([str(folder)]), repeat, clock)
        spread.MIN_BYTES = shared
        row("iotc manifest.load, whole, in one process", whole)
        start = best(lambda: subprocess.run([sys.executable, "-m", "iotc_apply", "--version"],
                                            check=True, capture_output=True), repeat,
                     time.perf_counter)
        row("start-up (iotc --version, wall)", start)
        verdict(start + whole, 4.0, "one process: start-up + load")
        cores = spread.workers(sum(len(t.encode()) for t in texts), len(texts))
        blobs = [pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL) for b in builds]
        dumps = best(lambda: [pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL)
                              for b in builds], repeat, clock)
        loads = best(lambda: [pickle.loads(b) for b in blobs], repeat, clock)
        row("what spreading adds: the built files pickled (workers)", dumps)
        row("what spreading adds: and unpickled (the process itself)", loads)
        # each of `cores` processes reads its share; the first unpickles the others' answers
        # and checks across documents
        share = (built + dumps) / cores if cores > 1 else built  # one process pickles nothing
        verdict(start + share + loads * (cores - 1) / cores + cross, 4.0,
                f"{cores} process(es), as iotc would spread these files, at best")
        shipped = best(lambda: subprocess.run([sys.executable, "-m", "iotc_apply", "validate",
                                               str(folder)], check=True, capture_output=True),
                       repeat, time.perf_counter)
        verdict(shipped, 4.0, "iotc validate as shipped (wall)")


# -- figure 3: plan of 100,000 devices over 10 templates ----------------------------------------


def plan(keep: str, repeat: int) -> None:
    import plan_bench

    from iotc_apply import snapshot
    from iotc_apply.client import IoTConnect, Settings
    from iotc_apply.keystore import KeyStore, account_folder
    from iotc_apply.manifest import load
    from iotc_apply.model import DesiredTemplate
    from iotc_apply.plan import PlanOptions, make_plan

    per_template = plan_bench.split(100_000, 10)
    db, folder, keys = f"{keep}/e-100000x10.db", Path(keep) / "m-100000x10", \
        f"{keep}/keys-100000x10"
    if not Path(f"{db}.built").exists():
        Path(keep).mkdir(parents=True, exist_ok=True)
        plan_bench.build(per_template, keep, db, folder, keys)
    proc, env = serve(0.0, db)
    try:
        os.environ.update(env)
        os.environ["IOTC_CONFIG_DIR"] = tempfile.mkdtemp(prefix="iotc-floors-")
        api = IoTConnect.connect(Settings.from_env(os.environ))
        me = api.session.login(env["IOTC_USER"], env["IOTC_PASS"])
        store = KeyStore(Path(keys), account_folder(me.cpid, me.env))
        templates = list(api.templates.list())
        clock = time.process_time
        print(f"plan: 100,000 devices over {len(templates)} templates (min of {repeat}, CPU of "
              "this process)")
        start = best(lambda: subprocess.run([sys.executable, "-m", "iotc_apply", "--version"],
                                            check=True, capture_output=True), repeat,
                     time.perf_counter)
        row("start-up (iotc --version, wall)", start)
        loaded = load([str(folder)])
        loading = best(lambda: load([str(folder)]), repeat, clock)
        row("manifests: 10 DeviceSets -> 100,000 desired devices", loading)
        kept = store.folders()
        scan = best(store.folders, repeat, clock)
        expiry = best(lambda: store.expiring(30, kept), repeat, clock)
        row("key store: the account folder listed (one scandir)", scan)
        row("key store: kept certificates' expiry (one stat each, cached)", expiry)
        root = os.open(store.root, os.O_RDONLY | os.O_DIRECTORY)
        names = sorted(kept)
        raw = best(lambda: [os.stat(f"{n}/cert.pem", dir_fd=root) for n in names], repeat,
                   clock)
        os.close(root)
        row("    of which the 100,000 stat calls alone", raw)
        server = process_cpu(proc.pid)
        listing = best(lambda: [list(api.devices.list(t.guid, expect=t.device_count))
                                for t in templates], repeat, clock)
        pages = sum(-(-n // 100) + 1 for n in per_template)
        served = (process_cpu(proc.pid) - server) / repeat
        row(f"listing: {pages:,} device pages read (HTTP, JSON, devices)", listing)
        codes = [t.code for t in loaded.desired.of(DesiredTemplate)]
        snap = snapshot.take(api, codes, [])
        expiring = store.expiring(30, kept)
        planner = best(lambda: make_plan(loaded.desired, snap, PlanOptions(
            local_keys=kept, expiring=expiring, now=time.time())), repeat, clock)
        row("planner: make_plan, nothing to change", planner)
        client = start + loading + scan + expiry + listing + planner
        verdict(client, 3.5, "the client's work in one process")
        row(f"the emulator serving those pages (its CPU, ~{served / pages * 1000:.2f} ms each)",
            served)
        verdict((client + served) / 2, 3.5, "client and emulator on two cores, at best")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- figure 2: client CPU per device create -----------------------------------------------------


def create(devices: int, parallelism: int, pace: float) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from iotc_apply.client import IoTConnect, Settings
    from iotc_apply.keystore.certs import Issuer
    from iotc_apply.keystore.store import KeyStore
    from iotc_apply.safefile import sync_filesystem

    def per_device(work: Callable[[int], None]) -> float:
        """CPU of this process per device, `work(i)` run for every device by `parallelism`
        threads, each pausing `pace` ms after each device as a worker waiting on the
        service does (caches go as cold as they go in apply)."""
        def worker(first: int) -> None:
            for i in range(first, devices, parallelism):
                work(i)
                if pace:
                    time.sleep(pace / 1000)
        started = time.process_time()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(parallelism)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return (time.process_time() - started) / devices

    issuer = Issuer()
    spare: dict[int, str] = {}  # certificates for the bare POSTs (each device its own)

    def crypto(i: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        spare[i] = issuer.certificate(key, f"bare-{i:06}")
        key.private_bytes(serialization.Encoding.PEM,
                          serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())

    print(f"create: {devices:,} devices, {parallelism} threads, {pace:g} ms between a thread's "
          "devices (CPU of this process per device)")
    with tempfile.TemporaryDirectory() as tmp:  # the disk fleet_bench.py keeps keys on
        raw_root = Path(tmp) / "raw"
        raw_root.mkdir()
        lock = threading.Lock()

        def files(i: int) -> None:  # what a durable key folder takes, without any of iotc
            staged = tempfile.mkdtemp(dir=raw_root)
            for name in ("key.pem", "cert.pem", "iotcDeviceConfig.json"):
                fd = os.open(f"{staged}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, b"x" * 600)
                os.close(fd)
            if i % parallelism == 0:  # group commit: one filesystem sync per batch
                with lock:
                    sync_filesystem(raw_root)
            os.rename(staged, raw_root / f"d{i:06}")

        store = KeyStore(Path(tmp) / "keys", "floor-poc")
        config = {"cpid": "floor", "env": "poc", "uniqueId": "", "pf": "aws"}
        certificates: dict[int, str] = {}

        def ensure(i: int) -> None:
            certificates[i] = store.ensure(f"floor-{i:06}", f"floor-{i:06}", config).certificate_pem

        keyed = per_device(ensure)
        cryptographic = per_device(crypto)
        syscalls = per_device(files)
        print("  key side")
        row("cryptography: key, certificate, PEM (no iotc code)", cryptographic * 1000, "ms")
        row("system calls of a durable folder (mkdtemp, 3 files, rename, syncfs)",
            syscalls * 1000, "ms")
        row("iotc KeyStore.ensure: the two, and its own checks", keyed * 1000, "ms")
    proc, env = serve(20.0)
    try:
        os.environ.update(env)
        os.environ["IOTC_CONFIG_DIR"] = tempfile.mkdtemp(prefix="iotc-floors-")
        manifests = Path(os.environ["IOTC_CONFIG_DIR"]) / "template.yaml"
        manifests.write_text(TEMPLATE)
        subprocess.run([sys.executable, "-m", "iotc_apply", "apply", str(manifests),
                        "--auto-approve"], env=os.environ, check=True, capture_output=True)
        api = IoTConnect.connect(Settings.from_env(os.environ))
        api.session.login(env["IOTC_USER"], env["IOTC_PASS"])
        template = next(iter(api.templates.list()))
        entity = api.entities.root().guid
        posted = per_device(lambda i: api.devices.create(
            template.guid, f"floor-{i:06}", f"floor {i}", entity, certificates[i]))
        urls, auth = login(env)
        url = urllib.parse.urlsplit(urls["deviceBaseUrl"] + "/Device")
        connections = threading.local()

        def bare(i: int) -> None:  # the same request through http.client alone
            if not hasattr(connections, "c"):
                connections.c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            body = json.dumps({"deviceTemplateGuid": template.guid, "uniqueId": f"bare-{i:06}",
                               "displayName": f"bare {i}", "entityGuid": entity,
                               "certificateText": spare[i]})
            connections.c.request("POST", url.path, body, {
                **auth, "Content-Type": "application/json", "Accept": "application/json"})
            answer = connections.c.getresponse()
            json.loads(answer.read())
            assert answer.status == 200, answer.status

        barely = per_device(bare)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print("  registration side")
    row("http.client alone: the same POST /Device at 20 ms, its answer decoded", barely * 1000,
        "ms")
    row("iotc DevicesClient.create: the POST with auth, retries, envelope", posted * 1000,
        "ms")
    floor, ours = cryptographic + syscalls + barely, keyed + posted
    print(f"  = per device, at the floor of each part: {floor * 1000:.3f} ms (bound 1.0 ms, "
          f"ratio {floor / 0.001:.2f}); as iotc does them: {ours * 1000:.3f} ms (ratio "
          f"{ours / 0.001:.2f}); apply adds its start-up, plan and read-back "
          "(fleet_bench.py: the whole command)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    v = sub.add_parser("validate", help="figure 5")
    v.add_argument("--devices", type=int, default=100_000)
    v.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("plan", help="figure 3")
    p.add_argument("--keep", required=True, metavar="DIR")
    p.add_argument("--repeat", type=int, default=3)
    c = sub.add_parser("create", help="figure 2")
    c.add_argument("--devices", type=int, default=1000)
    c.add_argument("--parallelism", type=int, default=10)
    c.add_argument("--pace", type=float, default=20.0, metavar="MS")
    args = parser.parse_args()
    tune_gc()  # as every iotc command does
    if args.figure == "validate":
        validate(args.devices, args.repeat)
    elif args.figure == "plan":
        plan(args.keep, args.repeat)
    else:
        create(args.devices, args.parallelism, args.pace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
