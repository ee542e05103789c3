"""CLI commands of the collect stage (registered on the main Typer app by `register`).

    sneakergan collect shop SOURCE.yaml --store STORE
    sneakergan collect wayback --domain D --from 2012 --to 2016 --store STORE
    sneakergan collect folder PATH --store STORE
    sneakergan collect urls FILE.txt|FILE.csv --store STORE
    sneakergan collect instagram EXPORT.zip|FOLDER --store STORE
    sneakergan collect status STORE
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sneakergan.console import console, err_console
from sneakergan.errors import UserError

collect_app = typer.Typer(
    help="Gather raw images with provenance into a STORE (objects by sha256 + manifest.sqlite).",
    no_args_is_help=True,
)

StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="Store folder (created if missing).")]
UserAgentOpt = Annotated[Optional[str], typer.Option("--user-agent", help="User-Agent sent with every request.")]
DelayOpt = Annotated[float, typer.Option("--delay", min=0, help="Seconds between requests to one domain "
                                         "(AutoThrottle adapts above this).")]
PerDomainOpt = Annotated[int, typer.Option("--per-domain", min=1, help="Concurrent requests per domain.")]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, help="Retries on 429/5xx/network errors.")]
BackoffOpt = Annotated[float, typer.Option("--backoff", min=0, help="First retry pause in seconds (doubles).")]
MaxBytesOpt = Annotated[int, typer.Option("--max-bytes", min=1, help="Largest image file accepted.")]
MaxPixelsOpt = Annotated[int, typer.Option("--max-pixels", min=1, help="Most pixels an image may decode to.")]
MinSideOpt = Annotated[int, typer.Option("--min-side", min=1, help="Shorter side below this: 'too_small'.")]
MaxPagesOpt = Annotated[int, typer.Option("--max-pages", min=0, help="Stop after fetching this many pages "
                                          "(0: no limit).")]
JobOpt = Annotated[Optional[str], typer.Option("--job", help="Job name for resuming (default: from the source).")]
RestartOpt = Annotated[bool, typer.Option("--restart", help="Fetch this job's pages again (images already "
                                          "stored are still not downloaded again).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Scrapy's INFO log.")]


def _fail(msg: str) -> UserError:
    """The error to raise for a user mistake (printed as one line by the CLI's entry point)."""
    return UserError(msg)


def _config(user_agent, delay, per_domain, retries, backoff, max_bytes, max_pixels, min_side, max_pages,
            quiet, verbose):
    from sneakergan.collect.config import DEFAULT_USER_AGENT, CrawlConfig

    return CrawlConfig(user_agent=user_agent or DEFAULT_USER_AGENT, delay=delay, concurrency_per_domain=per_domain,
                       concurrency=max(8, per_domain), retries=retries, backoff_base=backoff, max_bytes=max_bytes,
                       max_pixels=max_pixels, min_side=min_side, max_pages=max_pages, progress=not quiet,
                       log_level="INFO" if verbose else "WARNING")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "job"


def _run(spider_cls, cfg, store: Path, job: str, restart: bool, **kwargs) -> None:
    from sneakergan.collect.crawl import CrawlError, check_fetched, run_spider
    from sneakergan.collect.progress import crawl_counts
    from sneakergan.collect.store import Store, StoreError

    try:
        with Store.open(store) as s:
            if restart:
                s.forget_job(job)
    except (StoreError, OSError) as e:
        raise _fail(f"cannot open store {store}: {e}") from None
    stats = run_spider(spider_cls, cfg, store_path=str(store), job=job, **kwargs)
    c = crawl_counts(stats)
    typer.echo(f"job {job}: fetched {c['pages']} pages ({c['recorded']} resumed from the manifest), "
               f"{c['images']} new images, {c['rejected']} rejected, {c['duplicates'] + c['linked']} "
               f"duplicates/links, {c['errors']} errors ({stats.get('finish_reason', '?')})")
    try:
        check_fetched(stats, job)
    except CrawlError as e:
        raise _fail(str(e)) from None


@collect_app.command("shop")
def shop_cmd(
    source: Annotated[Path, typer.Argument(help="YAML source file (see examples/sources/).")],
    store: StoreOpt,
    user_agent: UserAgentOpt = None, delay: DelayOpt = 1.0, per_domain: PerDomainOpt = 2, retries: RetriesOpt = 3,
    backoff: BackoffOpt = 2.0, max_bytes: MaxBytesOpt = 30 * 1024 * 1024, max_pixels: MaxPixelsOpt = 40_000_000,
    min_side: MinSideOpt = 64, max_pages: MaxPagesOpt = 0, job: JobOpt = None, restart: RestartOpt = False,
    quiet: QuietOpt = False, verbose: VerboseOpt = False,
) -> None:
    """Crawl a webshop described by a YAML source file (robots.txt obeyed, resumable)."""
    from sneakergan.collect.config import load_source
    from sneakergan.collect.spiders import ShopSpider

    src = load_source(source)  # a SourceError is a UserError: one line, exit 2
    cfg = _config(user_agent, delay, per_domain, retries, backoff, max_bytes, max_pixels, min_side, max_pages,
                  quiet, verbose)
    _run(ShopSpider, cfg, store, job or _slug(f"shop-{src.name}"), restart, source=src)


@collect_app.command("wayback")
def wayback_cmd(
    domain: Annotated[str, typer.Option("--domain", "-d", help="Domain (all its pages) or URL prefix.")],
    store: StoreOpt,
    date_from: Annotated[Optional[str], typer.Option("--from", help="YYYY[-MM[-DD]]")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="YYYY[-MM[-DD]]")] = None,
    match: Annotated[Optional[str], typer.Option("--match", help="Regex on archived URLs (e.g. product pages).")]
    = None,
    images: Annotated[bool, typer.Option("--images", help="List archived images directly instead of pages.")]
    = False,
    image_css: Annotated[Optional[list[str]], typer.Option("--image-css", help="CSS for product photos on "
                                                           "archived pages (repeatable; default: img).")] = None,
    cdx_url: Annotated[str, typer.Option("--cdx-url", help="CDX API endpoint.")]
    = "https://web.archive.org/cdx/search/cdx",
    wayback_url: Annotated[str, typer.Option("--wayback-url", help="Snapshot base URL.")]
    = "https://web.archive.org/web",
    cdx_page_size: Annotated[int, typer.Option("--cdx-page-size", min=1, help="CDX rows per query "
                                               "(the rest is fetched with resume keys).")] = 1000,
    user_agent: UserAgentOpt = None, delay: DelayOpt = 2.0, per_domain: PerDomainOpt = 2, retries: RetriesOpt = 4,
    backoff: BackoffOpt = 5.0, max_bytes: MaxBytesOpt = 30 * 1024 * 1024, max_pixels: MaxPixelsOpt = 40_000_000,
    min_side: MinSideOpt = 64, max_pages: MaxPagesOpt = 0, job: JobOpt = None, restart: RestartOpt = False,
    quiet: QuietOpt = False, verbose: VerboseOpt = False,
) -> None:
    """Archived product pages (and their images, original bytes) of a domain from the Wayback Machine."""
    from sneakergan.collect.config import ImageRule
    from sneakergan.collect.spiders import WaybackSpider
    from sneakergan.collect.wayback import cdx_query_url

    cdx_query_url(cdx_url, domain, date_from, date_to, match=match)  # validates dates and target
    if match:
        try:
            re.compile(match)
        except re.error as e:
            raise _fail(f"--match {match!r} is not a regular expression ({e})") from None
    cfg = _config(user_agent, delay, per_domain, retries, backoff, max_bytes, max_pixels, min_side, max_pages,
                  quiet, verbose)
    rule = ImageRule(css=tuple(image_css or ["img"]))
    name = job or _slug(f"wayback-{domain}-{date_from or ''}-{date_to or ''}{'-images' if images else ''}")
    _run(WaybackSpider, cfg, store, name, restart, target=domain, date_from=date_from, date_to=date_to,
         cdx_url=cdx_url, wayback_url=wayback_url, match=match, images_only=images, image_rule=rule,
         page_limit=cdx_page_size)


@collect_app.command("urls")
def urls_cmd(
    file: Annotated[Path, typer.Argument(help=".txt (one URL a line) or .csv (url column) of image URLs.")],
    store: StoreOpt,
    user_agent: UserAgentOpt = None, delay: DelayOpt = 1.0, per_domain: PerDomainOpt = 2, retries: RetriesOpt = 3,
    backoff: BackoffOpt = 2.0, max_bytes: MaxBytesOpt = 30 * 1024 * 1024, max_pixels: MaxPixelsOpt = 40_000_000,
    min_side: MinSideOpt = 64, quiet: QuietOpt = False, verbose: VerboseOpt = False,
) -> None:
    """Download a list of image URLs (robots.txt obeyed, resumable)."""
    from sneakergan.collect.importers import read_url_list
    from sneakergan.collect.spiders import UrlListSpider

    entries = read_url_list(file)
    cfg = _config(user_agent, delay, per_domain, retries, backoff, max_bytes, max_pixels, min_side, 0,
                  quiet, verbose)
    _run(UrlListSpider, cfg, store, _slug(f"urls-{file.stem}"), False, entries=entries)


def _import(kind: str, path: Path, store: Path, cfg, quiet: bool, **kwargs) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sneakergan.collect.progress import RateColumn

    from sneakergan.collect.importers import import_folder, import_instagram_export, list_image_files
    from sneakergan.collect.store import Store, StoreError

    if not path.exists():  # before the store is created or a progress bar drawn
        raise _fail(f"{path} does not exist")
    try:
        s = Store.open(store)
    except (StoreError, OSError) as e:
        raise _fail(f"cannot open store {store}: {e}") from None
    progress = Progress(TextColumn(f"[bold]import {kind}"), BarColumn(), MofNCompleteColumn(),
                        RateColumn("files"), TimeRemainingColumn(),
                        console=err_console, disable=quiet)
    with s, progress:  # a SourceError (a UserError) closes the bar and the store, then prints its one line
        task = progress.add_task(kind, total=None)
        advance = lambda n: progress.advance(task, n)  # noqa: E731
        if kind == "folder":
            progress.update(task, total=len(list_image_files(path.resolve(), kwargs.get("all_files", False))))
            report = import_folder(s, path, cfg, progress=advance, **kwargs)
        else:
            report = import_instagram_export(s, path, cfg, progress=advance,
                                             total=lambda n: progress.update(task, total=n))
    extra = f", {report.link_only} saved posts without media in the export" if kind == "instagram" else ""
    typer.echo(f"{kind} {path}: {report.seen} files, {report.new_ok} new images, {report.rejected} rejected, "
               f"{report.duplicates} duplicates linked, {report.skipped} already imported{extra}")


@collect_app.command("folder")
def folder_cmd(
    path: Annotated[Path, typer.Argument(help="Folder tree of images (or one file).")],
    store: StoreOpt,
    all_files: Annotated[bool, typer.Option("--all-files", help="Try every file, not only image extensions.")]
    = False,
    max_bytes: MaxBytesOpt = 30 * 1024 * 1024, max_pixels: MaxPixelsOpt = 40_000_000, min_side: MinSideOpt = 64,
    quiet: QuietOpt = False,
) -> None:
    """Import a local folder of images."""
    cfg = _config(None, 0, 1, 0, 0, max_bytes, max_pixels, min_side, 0, quiet, False)
    _import("folder", path, store, cfg, quiet, all_files=all_files)


@collect_app.command("instagram")
def instagram_cmd(
    export: Annotated[Path, typer.Argument(help="Your Instagram data export (JSON format): the zip or folder.")],
    store: StoreOpt,
    max_bytes: MaxBytesOpt = 30 * 1024 * 1024, max_pixels: MaxPixelsOpt = 40_000_000, min_side: MinSideOpt = 64,
    quiet: QuietOpt = False,
) -> None:
    """Import the photos of an Instagram data export, keeping caption, date and post link (no crawling)."""
    cfg = _config(None, 0, 1, 0, 0, max_bytes, max_pixels, min_side, 0, quiet, False)
    _import("instagram", export, store, cfg, quiet)


@collect_app.command("status")
def status_cmd(
    store: Annotated[Path, typer.Argument(help="Store folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts (and every rejected file) as JSON.")]
    = False,
    rejected: Annotated[int, typer.Option("--rejected", min=0, help="How many rejected files to name (0: all).")]
    = 20,
) -> None:
    """Counts by source and status, and the rejected files by their original path or URL."""
    from rich.table import Table

    from sneakergan.collect.store import Store
    from sneakergan.labels import original_name

    with Store.open(store, create=False) as s:
        counts = s.counts()
        bad = [row for row in s.iter_images(status=None) if row["status"] != "ok"]
        named = [{"name": original_name(s.sources_of(row["sha256"])) or row["sha256"], "status": row["status"],
                  "reason": row["reason"], "sha256": row["sha256"]} for row in bad]
    named.sort(key=lambda r: (r["status"], r["name"]))
    if as_json:
        sys.stdout.write(json.dumps({**counts, "rejected": named}, indent=2, sort_keys=True) + "\n")
        return
    statuses = sorted({st for per in counts["by_kind_status"].values() for st in per},
                      key=lambda st: (st != "ok", st))
    table = Table(title=f"{store}: images by source and status")
    table.add_column("source")
    for st in statuses:
        table.add_column(st, justify="right", style="green" if st == "ok" else None)
    table.add_column("places", justify="right")
    for kind in sorted(counts["sources_by_kind"]):
        per = counts["by_kind_status"].get(kind, {})
        table.add_row(kind, *[str(per.get(st, 0)) for st in statuses], str(counts["sources_by_kind"][kind]))
    table.add_row("[bold]all (distinct)", *[str(counts["images_by_status"].get(st, 0)) for st in statuses],
                  str(sum(counts["sources_by_kind"].values())))
    console.print(table)
    if counts["failures_by_reason"]:
        ft = Table(title="URLs that gave no image")
        ft.add_column("reason")
        ft.add_column("URLs", justify="right")
        for reason, n in sorted(counts["failures_by_reason"].items()):
            ft.add_row(reason, str(n))
        console.print(ft)
    if named:
        shown = named if rejected == 0 else named[:rejected]
        rt = Table(title=f"rejected files ({len(named)})")
        for col in ("file or URL", "status", "reason"):
            rt.add_column(col, overflow="fold")
        for r in shown:
            rt.add_row(r["name"], r["status"], r["reason"] or "")
        console.print(rt)
        if len(shown) < len(named):
            console.print(f"... {len(named) - len(shown)} more (--rejected 0 names them all)")
    console.print(f"{counts['ok']} usable images of {counts['images']}; marks: "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(counts['marks'].items())) or 'none'}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(collect_app, name="collect")
