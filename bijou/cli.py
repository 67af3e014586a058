"""The `bijou` command line."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from PIL import Image

from bijou.catalog.loader import catalog_sources, load_catalog
from bijou.catalog.media import MediaStore, decode_image
from bijou.config import BijouConfig, load_config
from bijou.retrieval.index import IndexBusyError, IndexMismatchError
from bijou.retrieval.search import SearchEngine, SearchRequest, SearchResult

if TYPE_CHECKING:
    from bijou.agent.agent import ShoppingAgent
    from bijou.metrics import Query

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
FusionOption = Annotated[
    str | None,
    typer.Option("--fusion", help="none | concat | gated | attention | lowrank (default: config)"),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (default: $BIJOU_CONFIG)")
]


def _config(path: Path | None, fusion: str | None = None) -> BijouConfig:
    try:
        config = load_config(path)
        if fusion is not None:
            section = config.fusion.model_validate({"kind": fusion})
            config = config.model_copy(update={"fusion": section})
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config / --fusion") from exc
    # One data directory for every command, wherever it runs: say which.
    _err(f"bijou data: {config.data_dir}")
    return config


@app.callback()
def main() -> None:
    """Bijou: multimodal search and shopping chat for jewelry shops."""


def _err(message: str) -> None:
    print(message, file=sys.stderr)


@app.command("train-image-encoder")
def train_image_encoder(
    config_path: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="checkpoint path")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    seed: Annotated[int | None, typer.Option(help="default: the config's seed")] = None,
) -> None:
    """Train the image projection head on the catalog's image-title pairs."""
    from tqdm import trange

    from bijou.fusion.image import ImageHeadConfig, load_backbone
    from bijou.fusion.text import load_text_encoder
    from bijou.fusion.train_image import ImageTrainOptions, extract_features, train_image_head

    config = _config(config_path)
    catalog_path, images_root = catalog_sources(config)
    loaded = load_catalog(catalog_path)
    _err(loaded.summary())
    head_config = ImageHeadConfig()
    extractor = load_backbone(config, head_config.input_size)
    products, features = extract_features(
        loaded.products, MediaStore(images_root), extractor, config.data_dir / "cache"
    )
    options = ImageTrainOptions(epochs=epochs, seed=config.seed if seed is None else seed)
    checkpoint = train_image_head(
        products,
        features,
        load_text_encoder(config),
        head_config,
        options,
        progress=lambda r: trange(len(r), desc="epochs"),
    )
    out = out or config.data_dir / "checkpoints" / "image_head.pt"
    checkpoint.save(out)
    _err(f"saved {out} ({checkpoint.version})")
    print(json.dumps(checkpoint.metrics, indent=2))


@app.command("train-fusion")
def train_fusion_command(
    model: Annotated[str, typer.Option(help="concat | gated | attention | lowrank")] = "gated",
    videos: Annotated[
        Path | None, typer.Option(help="a catalog file of products with videos (overrides by id)")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    out: Annotated[Path | None, typer.Option(help="checkpoint path")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Train a fusion model on (query, product) pairs from the catalog; report the test split."""
    from tqdm import trange

    from bijou.fusion.encoders import load_encoders
    from bijou.fusion.models import MODELS, FusionCheckpoint, FusionConfig
    from bijou.fusion.train_fusion import (
        FusionTrainOptions,
        catalog_data,
        compare,
        metrics_table,
        split_rows,
        train_fusion,
    )

    if model not in MODELS:
        raise typer.BadParameter(f"choose one of {', '.join(MODELS)}", param_hint="--model")
    config = _config(config_path)
    encoders = load_encoders(config)
    data = catalog_data(config, encoders, videos)
    options = FusionTrainOptions(epochs=epochs, seed=config.seed)
    fusion, train_metrics = train_fusion(
        data, FusionConfig(kind=model), options, progress=lambda r: trange(len(r), desc="epochs")
    )
    systems = compare(data, {model: fusion}, split_rows(data, options, "test"))
    metrics = {**train_metrics} | {
        f"test_{name}_{measure}": getattr(results["all"], measure)
        for name, results in systems.items()
        for measure in ("ndcg", "recall", "mrr")
    }
    checkpoint = FusionCheckpoint.of(fusion, encoders.versions, metrics, config.seed)
    out = out or config.data_dir / "checkpoints" / f"fusion_{model}.pt"
    checkpoint.save(out)
    _err(f"saved {out} ({checkpoint.version})")
    print(metrics_table(systems))


@app.command("train-moves")
def train_moves_command(
    out: Annotated[Path | None, typer.Option(help="checkpoint path")] = None,
    per_move: Annotated[int, typer.Option(min=10, help="synthetic examples per move")] = 300,
    epochs: Annotated[int, typer.Option(min=1)] = 12,
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Train the dialog-move classifier on the shipped example templates and real
    utterances (seconds on a CPU); the default path is the checkpoint the package ships."""
    from bijou.retrieval import move_classifier as mc

    examples = mc.synthetic_examples(per_move, seed) + mc.real_examples()
    classifier = mc.train(examples, epochs=epochs, seed=seed)
    path = out or mc.CHECKPOINT
    classifier.save(path)
    _err(f"saved {path}: {len(examples)} examples, {len(classifier.labels)} moves")


DST_CORPUS = Path("eval/dst-corpus")


@app.command("train-tracker")
def train_tracker_command(
    corpus: Annotated[Path, typer.Option(help="the dialog-state corpus")] = DST_CORPUS,
    out: Annotated[Path | None, typer.Option(help="checkpoint path")] = None,
) -> None:
    """Train the dialog state tracker's learned parts on the corpus's training authors only
    (split.json; seconds on a CPU); the default path is the checkpoint the package ships."""
    from bijou.eval import dst
    from bijou.retrieval.lexicon import load_lexicon
    from bijou.understanding.learned import MODEL_PATH

    split = dst.load_split(corpus)
    dialogs = dst.load_corpus(corpus, split.train)
    understander = dst.catalog_understander()
    model = dst.fit_model(dialogs, understander, dst.Vocabulary.of(load_lexicon()))
    path = out or MODEL_PATH
    model.save(path)
    turns = sum(len(d.turns) for d in dialogs)
    _err(f"saved {path}: {len(dialogs)} dialogs, {turns} turns of {', '.join(split.train)}")


@app.command("train-compatibility")
def train_compatibility_command(
    config_path: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="checkpoint path")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    seed: Annotated[int | None, typer.Option(help="default: the config's seed")] = None,
) -> None:
    """Train the complements' compatibility model on the indexed catalog's fused vectors
    (stylist-note pairs and rule pairs, split by note); the default path is the checkpoint
    the package ships. Measure it with bench/compatibility.py."""
    from bijou.retrieval import compatibility as cm

    config = _config(config_path)
    engine = _engine(config)
    try:
        products = engine.index.get_many(sorted(engine.index.fingerprints()))
        vectors = cm.product_vectors(engine, products)
        seed = config.seed if seed is None else seed
        split = cm.split_products(products, seed)
        model = cm.train(products, vectors, split, epochs=epochs, seed=seed)
    finally:
        engine.index.close()
    path = out or cm.CHECKPOINT
    model.save(path)
    _err(f"saved {path} ({model.version})")


def _sync(config: BijouConfig, engine: SearchEngine, rebuild: bool = False) -> None:
    """Bring the index in line with the configured catalog, reporting bad rows."""
    catalog_path, _ = catalog_sources(config)
    loaded = load_catalog(catalog_path)
    for error in loaded.errors:
        _err(f"{catalog_path}: {error}")
    _err(loaded.summary())
    _err(str(engine.sync(loaded.products, rebuild=rebuild)))


def _engine(config: BijouConfig) -> SearchEngine:
    """Models and index, loaded once; the index is built first when there is none, and a
    build that was stopped midway is finished."""
    engine = SearchEngine.load(config)
    if not engine.index.serving:
        _sync(config, engine)
        return engine
    if engine.payload_outdated():
        engine.repayload()
    if engine.fusion_outdated():
        engine.refuse()
    return engine


@app.command("index")
def index_command(
    config_path: ConfigOption = None,
    rebuild: Annotated[bool, typer.Option(help="drop the index and encode everything")] = False,
    fusion: FusionOption = None,
) -> None:
    """Bring the index in line with the catalog: add new, re-encode changed, delete removed."""
    config = _config(config_path, fusion)
    engine = SearchEngine.load(config)
    try:
        _sync(config, engine, rebuild)
    finally:
        engine.index.close()


@app.command("ship-vectors")
def ship_vectors_command(
    config_path: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="default: the file the package ships")] = None,
) -> None:
    """Write the catalog's text and image vectors from the index (built by the configured
    encoders) to the file a first run reuses: run after retraining an encoder."""
    from bijou.retrieval.shipped import SHIPPED_VECTORS, write_shipped

    config = _config(config_path)
    engine = _engine(config)
    try:
        manifest = engine.index.manifest
        versions = engine.encoders.versions
        assert manifest is not None
        if any(manifest.encoders.get(k) != versions[k] for k in ("text", "image")):
            raise typer.BadParameter(
                f"the index holds {manifest.encoders}, the encoders are {versions}: "
                "run `bijou index --rebuild` first"
            )
        catalog_path, _ = catalog_sources(config)
        products = load_catalog(catalog_path).products
        current = engine.index.fingerprints()
        fresh = [p for p in products if current.get(p.id) == p.fingerprint]
        vectors: dict[str, dict] = {}
        for start in range(0, len(fresh), 1000):
            part = [p.id for p in fresh[start : start + 1000]]
            vectors |= engine.index.vectors(part, ["text", "image"])
        path = out or SHIPPED_VECTORS
        counts = write_shipped(path, fresh, vectors, engine.store, versions)
    finally:
        engine.index.close()
    _err(
        f"wrote {path}: {counts['text']} text and {counts['image']} image vectors, "
        f"{path.stat().st_size / 1e6:.1f} MB"
    )


@app.command("upsert")
def upsert_command(
    catalog: Annotated[Path, typer.Argument(help="JSONL or CSV of products to add or update")],
    images: Annotated[Path | None, typer.Option(help="their images: a folder or a .zip")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Add or update single products without re-indexing the catalog."""
    config = _config(config_path)
    loaded = load_catalog(catalog)
    for error in loaded.errors:
        _err(f"{catalog}: {error}")
    _err(loaded.summary())
    engine = _engine(config)
    try:
        images = images or (catalog.parent / "images.zip")
        count = engine.upsert(loaded.products, images if images.exists() else catalog.parent)
        _err(f"index: {count} upserted, {engine.index.count()} products in all")
    finally:
        engine.index.close()


@app.command("import")
def import_command(
    kind: Annotated[str, typer.Argument(help="shopify | woocommerce")],
    export: Annotated[Path, typer.Argument(help="the shop's product export (CSV)")],
    images: Annotated[
        Path | None,
        typer.Option(
            help="a folder with the export's images (URLs are looked "
            "up here by file name; nothing is downloaded)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="where the catalog goes (default: <data>/imports/<name>)")
    ] = None,
    index: Annotated[bool, typer.Option(help="add the products to the index")] = True,
    config_path: ConfigOption = None,
) -> None:
    """Import a Shopify or WooCommerce product export: writes a Bijou catalog (JSONL and its
    images) and adds the products to the index; every bad row is reported with its line."""
    from bijou.catalog.imports import FORMATS, import_export

    if kind not in FORMATS:
        raise typer.BadParameter(f"choose {' or '.join(FORMATS)}", param_hint="KIND")
    if not export.is_file():
        raise typer.BadParameter(f"no such file: {export}", param_hint="EXPORT")
    if images is not None and not images.is_dir():
        raise typer.BadParameter(f"not a folder: {images}", param_hint="--images")
    config = _config(config_path)
    folder = out or config.data_dir / "imports" / export.stem
    result = import_export(kind, export, images, folder / "images")
    for problem in result.errors:
        _err(f"{export}: {problem}")
    for problem in result.warnings:
        _err(f"{export}: warning: {problem}")
    _err(result.summary())
    folder.mkdir(parents=True, exist_ok=True)
    catalog = folder / "products.jsonl"
    with catalog.open("w", encoding="utf-8") as handle:
        for product in result.products:
            handle.write(product.model_dump_json(exclude_none=True) + "\n")
    _err(f"wrote {catalog}")
    if index and result.products:
        engine = _engine(config)
        try:
            count = engine.upsert(result.products, folder / "images")
            _err(f"index: {count} upserted, {engine.index.count()} products in all")
        finally:
            engine.index.close()
    if not result.products:
        raise typer.Exit(1)


@app.command("delete")
def delete_command(
    product_ids: Annotated[list[str], typer.Argument(help="product ids to remove")],
    config_path: ConfigOption = None,
) -> None:
    """Remove products from the index."""
    engine = _engine(_config(config_path))
    try:
        held = {p.id for p in engine.index.get_many(product_ids)}
        for pid in product_ids:
            if pid not in held:
                _err(f"not in the index: {pid}")
        deleted = engine.delete(product_ids)
        _err(f"index: {deleted} deleted, {engine.index.count()} left")
    finally:
        engine.index.close()


def _result_json(result: SearchResult) -> dict[str, object]:
    return {
        "query": result.parsed.raw if result.parsed else "",
        "filters": dataclasses.asdict(result.filters),
        "relaxed": list(result.relaxed),
        "results": [
            {
                "id": r.product.id,
                "title": r.product.title,
                "price": r.product.price,
                "article": r.product.article,
                "colour": r.product.colour,
                "gender": r.product.gender,
                "score": round(r.score, 6),
                "exact": r.exact,
            }
            for r in result.results
        ],
    }


def _print_table(result: SearchResult) -> None:
    active = {k: v for k, v in dataclasses.asdict(result.filters).items() if v not in ((), None)}
    if active:
        print("filters: " + ", ".join(f"{k}={v}" for k, v in active.items()))
    if result.relaxed:
        print("too few exact matches; relaxed: " + ", ".join(result.relaxed))
    if not result.results:
        print("no products match")
    for rank, r in enumerate(result.results, start=1):
        mark = "" if r.exact else " (relaxed)"
        p = r.product
        print(f"{rank:>2}. [{p.id}] {p.title} | {p.colour} {p.article} | Rs {p.price:,.0f}{mark}")


def _load_photo(path: Path) -> Image.Image:
    try:
        return decode_image(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read image {path}: {exc.strerror or exc}") from exc


def _with_photo(line: str) -> tuple[str, Image.Image | None]:
    """ "@path/to/photo.jpg words" -> (words, the photo); other lines carry no photo."""
    if not line.startswith("@"):
        return line, None
    path, _, text = line[1:].partition(" ")
    return text, _load_photo(Path(path))


def _prompt(prompt: str) -> Iterator[tuple[str, Image.Image | None]]:
    """Lines typed at an interactive prompt, with their photos, until an empty line or EOF;
    an unreadable photo is reported and the line skipped."""
    while True:
        try:
            line = input(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if not line:
            return
        try:
            yield _with_photo(line)
        except ValueError as exc:
            print(exc)


def _batch(engine: SearchEngine, batch: Path, top_k: int) -> None:
    """One JSONL result line per query line; problems go to stderr and an "error" field."""
    for number, line in enumerate(batch.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        qid: object = None
        try:
            query = json.loads(line)
            if not isinstance(query, dict) or "qid" not in query:
                raise ValueError('each line must be a JSON object with a "qid"')
            qid = query["qid"]
            image = None
            if query.get("image"):
                path = Path(query["image"])
                if not path.is_absolute() and not path.exists():
                    path = batch.parent / path
                image = _load_photo(path)
            text = str(query.get("text") or "")
            if not text.strip() and image is None:
                raise ValueError('a query needs "text", "image" or both')
            result = engine.search.search(SearchRequest(text=text, image=image, top_k=top_k))
            print(json.dumps({"qid": qid, "ids": result.ids}, ensure_ascii=False), flush=True)
        except ValueError as exc:  # JSONDecodeError and ImageDecodeError are ValueErrors
            _err(f"{batch}:{number}: {exc}")
            if qid is not None:
                print(json.dumps({"qid": qid, "ids": [], "error": str(exc)}), flush=True)


def _interactive(engine: SearchEngine, top_k: int) -> None:
    print("Bijou search. Type what you are looking for; start with @path/to/photo.jpg to add a")
    print("photo; an empty line or Ctrl-D quits.")
    for text, image in _prompt("bijou> "):
        _print_table(engine.search.search(SearchRequest(text=text, image=image, top_k=top_k)))


@app.command("search")
def search_command(
    text: Annotated[str | None, typer.Argument(help="what the shopper asks for")] = None,
    image: Annotated[Path | None, typer.Option(help="a photo to search by")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    batch: Annotated[
        Path | None, typer.Option(help='JSONL of {"qid", "text"?, "image"?}; JSONL out')
    ] = None,
    fusion: FusionOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Search the catalog; with no query, an interactive prompt."""
    config = _config(config_path, fusion)
    if batch is not None and not batch.is_file():
        raise typer.BadParameter(f"no such file: {batch}", param_hint="--batch")
    photo = None
    if image is not None:
        try:
            photo = _load_photo(image)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--image") from exc
    engine = _engine(config)
    try:
        if batch is not None:
            _batch(engine, batch, top_k)
        elif text is None and photo is None:
            _interactive(engine, top_k)
        else:
            result = engine.search.search(SearchRequest(text=text or "", image=photo, top_k=top_k))
            if as_json:
                print(json.dumps(_result_json(result), ensure_ascii=False, indent=2))
            else:
                _print_table(result)
    finally:
        engine.index.close()


def _chat_turns(agent: ShoppingAgent, session: str, lines: list[str], as_json: bool) -> None:
    """One shopper message per line ("@photo.jpg text" sends a photo); prints the transcript."""

    transcript = []
    for line in lines:
        try:
            text, image = _with_photo(line)
        except ValueError as exc:
            _err(str(exc))
            continue
        reply = agent.reply(session, text, image)
        if as_json:
            transcript.append({"user": line, "reply": reply.model_dump()})
        else:
            print(f"you> {line}\nbijou> {reply.text}\n")
    if as_json:
        print(json.dumps(transcript, ensure_ascii=False, indent=2))


def _chat_interactive(agent: ShoppingAgent, session: str) -> None:
    from bijou.agent.agent import TextDelta

    print("Chat with the shop (empty line to quit; '@photo.jpg words' sends a photo).")
    for text, image in _prompt("you> "):
        print("bijou> ", end="", flush=True)
        for event in agent.stream(session, text, image):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
        print("\n")


@app.command("tryon")
def tryon_command(
    photo: Annotated[Path, typer.Argument(help="a photo of the shopper's face")],
    product_id: Annotated[str, typer.Argument(help="earrings, a necklace, a pendant or a set")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the image to write (.png or .jpg)")],
    config_path: ConfigOption = None,
) -> None:
    """Draw a catalog piece on a photo (virtual try-on); the photo is only read."""
    from bijou.modelfiles import ModelFileError
    from bijou.serve.tryon import TryOnError, TryOnRenderer

    config = _config(config_path)
    fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(out.suffix.lower())
    if fmt is None:
        raise typer.BadParameter("write a .png, .jpg or .jpeg file", param_hint="--out")
    try:
        shopper = _load_photo(photo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="PHOTO") from exc
    catalog_path, images_root = catalog_sources(config)
    product = next((p for p in load_catalog(catalog_path).products if p.id == product_id), None)
    if product is None:
        message = f"no product {product_id} in {catalog_path}"
        raise typer.BadParameter(message, param_hint="PRODUCT_ID")
    try:
        renderer = TryOnRenderer.load(config.tryon)
        result = renderer.render(shopper, product, MediaStore(images_root).load(product))
    except (TryOnError, ModelFileError) as exc:
        _err(str(exc))
        raise typer.Exit(2) from exc
    out.write_bytes(result.encode(fmt, config.tryon.jpeg_quality))  # type: ignore[arg-type]
    _err(f"{product.title}: {', '.join(p.name for p in result.placements)} -> {out}")


@app.command("chat")
def chat_command(
    script: Annotated[
        Path | None, typer.Option(help="one shopper message per line; prints the transcript")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="transcript as JSON")] = False,
    shopper: Annotated[
        str | None, typer.Option(help="returning shopper id: preferences carry over")
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Talk to the shopping agent; with --script, replay a conversation."""
    from bijou.agent.agent import ShoppingAgent

    config = _config(config_path)
    if script is not None and not script.is_file():
        raise typer.BadParameter(f"no such file: {script}", param_hint="--script")
    engine = _engine(config)
    agent = ShoppingAgent.load(config, engine)
    try:
        session = agent.start_session(shopper)
        if script is not None:
            lines = [ln.strip() for ln in script.read_text(encoding="utf-8").splitlines()]
            _chat_turns(agent, session, [ln for ln in lines if ln], as_json)
        else:
            _chat_interactive(agent, session)
    finally:
        agent.close()


@app.command("mcp")
def mcp_command(config_path: ConfigOption = None) -> None:
    """Serve the shop's catalog, knowledge and carts to an AI assistant over MCP (stdio):
    the assistant starts this command (see the README for its config)."""
    import anyio

    from bijou.serve.local import LocalBackend
    from bijou.serve.mcp import build_mcp

    config = _config(config_path)
    engine = _engine(config)  # stdout is the protocol: everything else goes to stderr
    backend = LocalBackend.load(config, engine)
    try:
        anyio.run(build_mcp(config, lambda: backend).run_stdio_async)
    finally:
        backend.close()


SERVE_YAML = Path(__file__).parent / "serve" / "serve.yaml"


@app.command("serve")
def serve_command(
    config_path: Annotated[
        Path, typer.Option("--config", "-c", help="Ray Serve YAML (see bijou/serve/serve.yaml)")
    ] = SERVE_YAML,
    host: Annotated[str | None, typer.Option(help="default: the file's http_options")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs Ray may use (default: all)")] = None,
    address: Annotated[
        str | None, typer.Option(help="join a running Ray cluster (ray start --head) instead")
    ] = None,
) -> None:
    """Run the shop app (Ray Serve: API, chat widget, voice) until stopped."""
    import os
    import time

    import yaml

    if not config_path.is_file():
        raise typer.BadParameter(f"no such file: {config_path}", param_hint="--config")
    spec = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    try:
        application = spec["applications"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise typer.BadParameter("the file has no applications", param_hint="--config") from exc
    http = {**(spec.get("http_options") or {})}
    http["host"] = host or http.get("host", "127.0.0.1")
    http["port"] = port or http.get("port", 8000)
    args = application.get("args") or {}
    overrides = {
        d["name"]: {k: v for k, v in d.items() if k != "name"}
        for d in application.get("deployments") or []
    }

    from bijou.serve.app import APP_NAME, build_app, settings

    # The index is built here, before Ray starts, so replicas open a ready index.
    config = settings(args)
    _err(f"bijou data: {config.data_dir}")
    engine = _engine(config)
    engine.index.close()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    # SIGTERM (docker stop, Kubernetes) stops like Ctrl-C, at any point, even while the
    # models load: the Serve shutdown below lets each replica finish its requests in flight
    # and close its stores, and ray.shutdown() ends every process this Ray started (the
    # default SIGTERM exit skipped both and left ray:: agents orphaned).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
        signal.signal(signal.SIGTERM, _interrupt)  # ray.init installs its own
        serve.start(http_options=http, proxy_location=spec.get("proxy_location", "EveryNode"))
        _err("starting the deployments (models load in each; about a minute on 2 cores)...")
        serve.run(build_app(args, overrides), name=APP_NAME, route_prefix="/")
        shown = "127.0.0.1" if http["host"] in ("0.0.0.0", "::") else http["host"]
        print(f"Bijou is running: http://{shown}:{http['port']}/  (API docs at /docs)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _err("stopping: finishing the requests in flight")
    finally:
        # A second signal during the shutdown must not cut it short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if ray.is_initialized():
            # The app first, with the proxies still up: each replica waits for its requests
            # in flight (graceful_shutdown_timeout_s) and their answers still reach the
            # clients; only then the proxies and the controller, then Ray itself.
            with contextlib.suppress(Exception):  # never deployed: nothing to delete
                serve.delete(APP_NAME)
            serve.shutdown()
            ray.shutdown()
        _err("stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


eval_app = typer.Typer(
    no_args_is_help=True,
    help="Evaluate the agent on scripted dialogs, or search on judged queries.",
)
app.add_typer(eval_app, name="eval")


def _print_rows(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


@eval_app.command("dialogs")
def eval_dialogs_command(
    path: Annotated[Path, typer.Argument(help="a scenario YAML file, or a folder of *.yaml")],
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="runs per scenario")] = 3,
    out: Annotated[
        Path | None, typer.Option(help="report folder (default: <data_dir>/eval/dialogs)")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="a running shop's base URL (default: the agent in this process)"),
    ] = None,
    judge: Annotated[
        bool, typer.Option("--judge", help="also score helpfulness and clarity with the LLM")
    ] = False,
    config_path: ConfigOption = None,
) -> None:
    """Run dialog scenarios k times each; write report.json, report.md and report.html."""
    from bijou.eval.clients import DialogClient, HttpClient, InProcessClient
    from bijou.eval.report import HEADLINE, write_reports
    from bijou.eval.runs import judge_results, run_scenarios
    from bijou.eval.scenarios import ScenarioError, load_scenarios

    config = _config(config_path)
    try:
        scenarios = load_scenarios(path)
    except ScenarioError as exc:
        raise typer.BadParameter(str(exc), param_hint="PATH") from exc
    if url is not None and not url.startswith(("http://", "https://")):
        raise typer.BadParameter("give an http:// or https:// URL", param_hint="--url")
    out = out or config.data_dir / "eval" / "dialogs"
    _err(f"{len(scenarios)} scenarios, {k} runs each, against {url or 'the agent in process'}")
    client: DialogClient = HttpClient(url) if url else InProcessClient.load(config, _engine(config))
    try:
        results = run_scenarios(scenarios, client, k, progress=_err)
        if judge:
            from bijou.agent.llm import load_chat_model

            model = (
                client.agent.llm if isinstance(client, InProcessClient) else load_chat_model(config)
            )
            _err("judging the replies with the LLM...")
            judge_results(results, model, timeout_s=config.llm.timeout_s)
    finally:
        client.close()
    paths = write_reports(results, out)
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    _print_rows(
        ["metric", "value"], [[label, _fmt_metric(summary[key])] for key, label in HEADLINE]
    )
    if judged := summary.get("judge"):
        scores = ", ".join(
            f"{key} {_fmt_metric(judged[key])}" for key in ("helpfulness", "clarity")
        )
        print(f"judge ({judged['judged']} turns): {scores}")
    for written in paths.values():
        _err(f"wrote {written}")


@eval_app.command("dst")
def eval_dst_command(
    corpus: Annotated[Path, typer.Option(help="the dialog-state corpus")] = DST_CORPUS,
    authors: Annotated[
        str, typer.Option(help="test (the held-out authors), train, or a comma list")
    ] = "test",
    out: Annotated[Path | None, typer.Option(help="write the scores and misses as JSON")] = None,
) -> None:
    """Joint goal accuracy and per-slot accuracy of the dialog state tracker (the agent's
    update before it, rules alone, learned parts alone, both) on the corpus's authors."""
    from bijou.eval import dst
    from bijou.retrieval.lexicon import load_lexicon
    from bijou.understanding.learned import load_tracker_model
    from bijou.understanding.tracker import StateTracker, TrackerOptions

    split = dst.load_split(corpus)
    chosen = {"test": split.test, "train": split.train}.get(authors, authors.split(","))
    dialogs = dst.load_corpus(corpus, chosen)
    vocab = dst.Vocabulary.of(load_lexicon())
    understander = dst.catalog_understander()
    model = load_tracker_model()
    trackers: dict[str, dst.Tracker] = {"agent": dst.AgentTracker(understander)}
    for strategy in ("rules", "learned", "combined"):
        options = TrackerOptions(strategy=strategy)
        trackers[strategy] = StateTracker(understander, options, model)
    scores = {name: dst.score(tracker, dialogs, vocab) for name, tracker in trackers.items()}
    header = ["slot", *scores]
    rows = [["joint goal", *(f"{s.joint_goal:.3f}" for s in scores.values())]]
    rows.append(["turn joint", *(f"{s.turn_joint:.3f}" for s in scores.values())])
    for slot in (*dst.STATE_SLOTS, *dst.TURN_SLOTS):
        rows.append([slot, *(f"{s.slots[slot]:.3f}" for s in scores.values())])
    for lang in scores["combined"].languages:
        rows.append(
            [
                f"joint goal {lang}",
                *(f"{s.languages[lang]['joint_goal']:.3f}" for s in scores.values()),
            ]
        )
    print(f"{len(dialogs)} dialogs, {scores['agent'].turns} turns of {', '.join(chosen)}")
    _print_rows(header, rows)
    if out is not None:
        report = {
            name: {**s.model_dump(), "misses": [m.model_dump() for m in s.misses]}
            for name, s in scores.items()
        }
        out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


@eval_app.command("rescore")
def eval_rescore_command(
    report: Annotated[Path, typer.Argument(help="a report.json written by `eval dialogs`")],
    path: Annotated[Path, typer.Argument(help="the scenarios it ran")],
    out: Annotated[Path, typer.Option(help="report folder for the new judgement")],
    config_path: ConfigOption = None,
) -> None:
    """Judge a report's recorded replies again with today's checks (no replay): compares a
    run made before a check changed with a new one on equal terms."""
    from bijou.eval.clients import CatalogClient
    from bijou.eval.report import HEADLINE, write_reports
    from bijou.eval.runs import recorded_results, rescore
    from bijou.eval.scenarios import load_scenarios
    from bijou.retrieval.shop import LocalShop

    config = _config(config_path)
    results = recorded_results(json.loads(report.read_text(encoding="utf-8")))
    client = CatalogClient(LocalShop.load(config, _engine(config)))
    try:
        rescore(results, load_scenarios(path), client)
    finally:
        client.close()
    paths = write_reports(results, out)
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    _print_rows(
        ["metric", "value"], [[label, _fmt_metric(summary[key])] for key, label in HEADLINE]
    )


def _fmt_metric(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _search_run(config: BijouConfig, asked: list[Query], queries: Path) -> dict[str, list[str]]:
    """The search's top 10 for each judged query."""
    engine = _engine(config)
    run: dict[str, list[str]] = {}
    try:
        for query in asked:
            try:
                image = None
                if query.image:
                    photo = Path(query.image)
                    if not photo.is_absolute() and not photo.exists():
                        photo = queries.parent / photo
                    image = _load_photo(photo)
                request = SearchRequest(text=query.text, image=image, top_k=10)
                run[query.qid] = engine.search.search(request).ids
            except ValueError as exc:
                _err(f"{queries}: {query.qid}: {exc}")
                run[query.qid] = []
    finally:
        engine.index.close()
    return run


@eval_app.command("retrieval")
def eval_retrieval_command(
    queries: Annotated[
        Path, typer.Option(help='JSONL of {"qid", "text"?, "image"?, "family"?}, as --batch')
    ],
    qrels: Annotated[Path, typer.Option(help='JSONL of {"qid", "id", "rel"}')],
    run_path: Annotated[
        Path | None,
        typer.Option(
            "--run", help="score this run (`bijou search --batch` output) instead of searching"
        ),
    ] = None,
    fusion: FusionOption = None,
    out: Annotated[Path | None, typer.Option(help="also write the metrics as JSON here")] = None,
    config_path: ConfigOption = None,
) -> None:
    """nDCG@10, Recall@10 and MRR of search on judged queries, overall and per family:
    searched now, or read from a run a shop made earlier (``--run``)."""
    from bijou.metrics import RetrievalMetrics, evaluate, read_qrels, read_queries, read_run

    config = _config(config_path, fusion)
    for hint, given in (("--queries", queries), ("--qrels", qrels)):
        if not given.is_file():
            raise typer.BadParameter(f"no such file: {given}", param_hint=hint)
    try:
        asked = read_queries(queries)
        judged = read_qrels(qrels)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--queries / --qrels") from exc
    if run_path is not None:
        if not run_path.is_file():
            raise typer.BadParameter(f"no such file: {run_path}", param_hint="--run")
        try:
            run = read_run(run_path)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--run") from exc
    else:
        run = _search_run(config, asked, queries)

    def scores(metrics: RetrievalMetrics) -> dict[str, float | int]:
        return {
            "ndcg@10": round(metrics.ndcg, 4),
            "recall@10": round(metrics.recall, 4),
            "mrr": round(metrics.mrr, 4),
            "count": metrics.count,
        }

    overall = scores(evaluate(run, judged, k=10))
    families: dict[str, set[str]] = {}
    for query in asked:
        if query.family:
            families.setdefault(query.family, set()).add(query.qid)
    by_family = {
        name: scores(evaluate(run, {q: g for q, g in judged.items() if q in qids}, k=10))
        for name, qids in sorted(families.items())
    }
    report = {
        "fusion": config.fusion.kind,
        "queries": len(asked),
        "all": overall,
        "families": by_family,
    }
    rows = [("all", overall), *by_family.items()]
    print(f"fusion: {config.fusion.kind}")
    _print_rows(
        ["set", "judged", "nDCG@10", "Recall@10", "MRR"],
        [
            [
                name,
                str(row["count"]),
                f"{row['ndcg@10']:.4f}",
                f"{row['recall@10']:.4f}",
                f"{row['mrr']:.4f}",
            ]
            for name, row in rows
        ],
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        _err(f"wrote {out}")


def run() -> None:
    """Console entry point: expected failures are one clear line, not a traceback."""
    try:
        app()
    except (IndexBusyError, IndexMismatchError, FileNotFoundError) as exc:
        _err(f"bijou: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    run()
