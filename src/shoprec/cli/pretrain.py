"""`shoprec pretrain`: one transformer pre-trained across several shops (import files or consented-linked
platforms), written as a model directory a new shop starts from (`evaluate`/`train --init-from DIR`, with
`--zero-shot` or fine-tuned). Thin over shoprec.service.pretrain. JSON on stdout, progress on stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from shoprec.cli._common import emit_json, legacy_json_option, resolve_legacy_json
from shoprec.settings import Settings


@click.command("pretrain")
@click.option("--data", "data_args", multiple=True, metavar="FORMAT:PATH",
              help="A shop's import file or directory (repeat for each shop), e.g. s3rec:Beauty.txt.")
@click.option("--platform", "-p", "platforms", multiple=True,
              help="A platform of the database (repeat; every pair linked by both sides' consent).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the pre-trained model to (must not hold one already).")
@click.option("--config", "config", default=None, help="Transformer parameters: inline JSON or a .json/.toml file.")
@click.option("--seed", default=0, show_default=True, help="Seed of the model and its validation split.")
@legacy_json_option("the pre-training facts")
@click.pass_obj
def pretrain(settings: Settings, data_args: tuple[str, ...], platforms: tuple[str, ...], out: Path,
             config: str | None, seed: int, json_arg: str | None, output: Path | None) -> None:
    """Pre-train ONE transformer on several shops' events, items represented by their text and mappable
    attributes (brands, category paths; item ids are per shop and not carried over), and write it to OUT."""
    from shoprec.cli.evaluate import parse_config, parse_data_arg
    from shoprec.errors import ConfigError, DataError
    from shoprec.models.transformer.pretrain import save_pretrained
    from shoprec.service.pretrain import data_shops, platform_shops, pretrain_params, pretrain_shops

    as_json, output = resolve_legacy_json(json_arg, output)
    if bool(data_args) == bool(platforms):
        raise ConfigError("pretrain: give the shops either as --data FORMAT:PATH (repeated) or as --platform NAME "
                          "(repeated)")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"--out {out}: the directory is not empty")
    params = pretrain_params(parse_config(config))  # a bad parameter fails before any data is read

    def say(message: str) -> None:
        click.echo(message, err=True)

    if data_args:
        pairs = [parse_data_arg(a) for a in data_args]
        shops = data_shops(pairs)
        sources = {"data": [f"{fmt}:{path}" for fmt, path in pairs]}
    else:
        from shoprec.storage import create_db

        engine = create_db(settings.database_url)
        try:
            shops = platform_shops(engine, list(platforms))
        finally:
            engine.dispose()
        sources = {"platforms": list(platforms)}
    result = pretrain_shops(shops, params, seed=seed, progress=say, sources=sources)
    save_pretrained(result.model, out, result.facts)
    doc = {"out": str(out), **result.facts}
    say(f"wrote the pre-trained model to {out}")
    if not emit_json(doc, as_json, output):
        click.echo(f"pre-trained on {', '.join(s['name'] for s in doc['shops'])}: best epoch {doc['best_epoch']}, "
                   f"validation NDCG@10 {doc['val_NDCG@10']}")


commands: list[click.Command] = [pretrain]
