"""MkDocs hooks for the opendicke documentation site (``mkdocs.yml``: ``hooks: [tools/mkdocs_hooks.py]``).

Three jobs, each small:

* **A nav that tolerates pages arriving later.** ``mkdocs.yml`` lists every page we know of, including pages
  other work will add. Entries whose file does not exist (yet) are dropped before MkDocs validates the nav
  (a missing nav file would be a strict-mode warning), and any page in ``docs/`` that the nav does not list is
  appended: ``docs/tutorials/*.md`` to the "Tutorials" section, everything else to "More". So a new page
  appears in the site without editing ``mkdocs.yml``; listing it there only chooses its place and title.
* **Equations without a network.** MathJax 3 comes from the ``django-static-mathjax`` wheel (the ``docs`` extra);
  its single-file SVG build is added to the site as ``javascripts/mathjax/tex-svg-full.js``.
* **Sphinx roles in docstrings** (``:func:`opendicke.evolve` ``) become code, linked by mkdocs-autorefs where
  the target is documented on the site.
* **The CLI reference.** ``<!-- opendicke-cli-reference -->`` in a page is replaced by Markdown generated from
  the typer app (``typer.main.get_command``): every command, its usage, arguments and options, so the reference
  cannot drift from the code.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.opendicke")

CLI_MARKER = "<!-- opendicke-cli-reference -->"
MATHJAX_URI = "javascripts/mathjax/tex-svg-full.js"
TUTORIALS_SECTION = "Tutorials"
MORE_SECTION = "More"


# ---------------------------------------------------------------------------------------------------- nav ----

def _nav_files(nav) -> list[str]:
    """All page paths referenced by a nav (strings, ``{title: path}`` or ``{title: [children]}``)."""
    out = []
    for item in nav or []:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            out += _nav_files(value)
        elif isinstance(value, str) and not value.startswith(("http://", "https://")):
            out.append(value)
    return out


def _prune(nav, docs_dir: Path) -> list:
    """The nav without entries whose page does not exist; empty sections are dropped too."""
    kept = []
    for item in nav:
        title, value = next(iter(item.items())) if isinstance(item, dict) else (None, item)
        if isinstance(value, list):
            children = _prune(value, docs_dir)
            if children:
                kept.append({title: children})
        elif value.startswith(("http://", "https://")) or (docs_dir / value).is_file():
            kept.append(item)
        else:
            log.info("nav: %s is not (yet) in docs/, left out", value)
    return kept


def _section(nav: list, title: str) -> list:
    for item in nav:
        if isinstance(item, dict) and title in item and isinstance(item[title], list):
            return item[title]
    section: list = []
    nav.append({title: section})
    return section


def on_config(config):
    docs_dir = Path(config["docs_dir"])
    nav = config.get("nav")
    if not nav:
        return config
    nav = _prune(nav, docs_dir)
    listed = set(_nav_files(nav))
    excluded = ("README", "_")
    extra = sorted(
        p.relative_to(docs_dir).as_posix() for p in docs_dir.rglob("*.md")
        if not p.name.startswith(excluded)
    )
    for page in extra:
        if page in listed:
            continue
        target = TUTORIALS_SECTION if page.startswith("tutorials/") else MORE_SECTION
        _section(nav, target).append(page)
        log.info("nav: %s added to %r (not listed in mkdocs.yml)", page, target)
    config["nav"] = nav
    return config


# ----------------------------------------------------------------------------------------------- MathJax ----

def on_files(files, config):
    from mkdocs.structure.files import File

    import mathjax  # the django-static-mathjax wheel: MathJax's own files, no Django needed

    source = Path(mathjax.__file__).resolve().parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    if not source.is_file():
        raise FileNotFoundError(f"MathJax not found at {source}; install the docs extra: pip install -e '.[docs]'")
    files.append(File.generated(config, MATHJAX_URI, abs_src_path=str(source)))
    return files


# ------------------------------------------------------------------------------------------ CLI reference ----

def _plain(text: str) -> str:
    """Help text as literal Markdown: brackets, angle brackets and asterisks are not markup here."""
    for char, escaped in (("\\", "\\\\"), ("[", "\\["), ("]", "\\]"), ("*", "\\*"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, escaped)
    return text


def _escape(text: str) -> str:
    """Help text for one table cell."""
    return _plain(text).replace("|", "\\|").replace("\n", " ").strip()


def _param_row(param, ctx) -> str:
    names = ", ".join(f"`{n}`" for n in list(param.opts) + list(getattr(param, "secondary_opts", [])))
    kind = "flag" if param.is_flag else param.display_type(ctx).strip("<>")
    default = param.default
    shown = "" if default is None or param.is_flag or callable(default) or str(default) == "" else f"`{default}`"
    return f"| {names} | {_escape(kind)} | {shown} | {_escape(param.help or '')} |"


def _options_table(params, ctx) -> list[str]:
    rows = ["| option | type | default | meaning |", "|---|---|---|---|"]
    rows += [_param_row(p, ctx) for p in params]
    return rows


def _leaf_commands(command, path):
    # duck typing: typer >= 0.2x vendors its own click, so isinstance(…, click.Group) is not reliable
    if hasattr(command, "list_commands"):
        for name in command.list_commands(None):
            yield from _leaf_commands(command.get_command(None, name), [*path, name])
    else:
        yield path, command


def _usage(command, path) -> str:
    ctx = command.context_class(command, info_name=" ".join(path))
    return " ".join([" ".join(path), *command.collect_usage_pieces(ctx)])


def cli_reference_markdown() -> str:
    """Markdown for every command of the ``opendicke`` CLI, generated from the typer app."""
    import typer.main

    from opendicke.cli import app

    root = typer.main.get_command(app)
    leaves = list(_leaf_commands(root, ["opendicke"]))

    def options(command):
        return [p for p in command.params if p.param_type_name == "option" and p.name != "help" and not p.hidden]

    # options that at least half of the commands share word for word (the model options) are listed once
    def key(param):
        return tuple(param.opts), param.help

    counts: dict = {}
    for _, command in leaves:
        for param in options(command):
            counts[key(param)] = counts.get(key(param), 0) + 1
    shared_keys = {k for k, n in counts.items() if 2 * n >= len(leaves)}
    first = next(c for _, c in leaves if any(key(p) in shared_keys for p in options(c)))
    common = [p for p in options(first) if key(p) in shared_keys]

    lines = [
        "Generated from the typer app when the site is built (`opendicke COMMAND --help` prints the same).",
        "",
        f"**{root.help}**",
        "",
        "## Model options",
        "",
        "Most commands take the model from a file (`--config`) and/or flags; flags override the file; without "
        "either the model is the paper's Fig. 3 model. Patterns are numbered from 1. Each command below says which "
        "of these it takes.",
        "",
        *_options_table(common, first.context_class(first, info_name="opendicke")),
        "",
    ]
    groups_seen = set()
    for path, command in leaves:
        if len(path) > 2 and path[1] not in groups_seen:
            groups_seen.add(path[1])
            group = root.get_command(None, path[1])
            lines += [f"## opendicke {path[1]}", "", _escape(group.help or ""), ""]
        level = "###" if len(path) > 2 else "##"
        lines += [f"{level} {' '.join(path)}", ""]
        lines += [_plain((command.help or "").strip()), ""]
        lines += ["```text", _usage(command, path), "```", ""]
        args = [p for p in command.params if p.param_type_name == "argument"]
        if args:
            lines += ["| argument | meaning |", "|---|---|"]
            lines += [f"| `{(a.metavar or a.name).upper()}` | {_escape(getattr(a, 'help', None) or '')} |" for a in args]
            lines += [""]
        own = [p for p in options(command) if key(p) not in shared_keys]
        if own:
            lines += [*_options_table(own, command.context_class(command, info_name=path[-1])), ""]
        model = [p.opts[0] for p in options(command) if key(p) in shared_keys]
        if model:
            lines += ["[Model options](#model-options): " + ", ".join(f"`{o}`" for o in model) + ".", ""]
        if not own and not model:
            lines += ["No options besides `--help`.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ Sphinx roles in docstrings ----

_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")


def _role(match) -> str:
    _, tilde, target, call = match.groups()
    shown = (target.rsplit(".", 1)[-1] if tilde else target) + (call or "")
    code = f"<code>{shown}</code>"
    if "." in target and target.startswith("opendicke"):
        # a cross-reference that mkdocs-autorefs resolves when the object is documented, plain code otherwise
        return f'<autoref identifier="{target}" optional>{code}</autoref>'
    return code


def on_page_content(html, page, config, files):
    """Docstrings use Sphinx roles (:func:`x`); render them as code, linked where the target is documented."""
    return _ROLE.sub(_role, html)


def on_page_markdown(markdown, page, config, files):
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference_markdown())
    return markdown
