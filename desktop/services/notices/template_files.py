"""Templates as files: Callslip's own TOML (the format of ``templates/``) for version control, and ILLiad's.

Every import goes through :func:`template_admin.save_template`, so an imported template is checked exactly like
one saved in the editor and gets a revision naming who imported it; a template with problems is not saved.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import tomli_w

from desktop.db.engine import Database
from desktop.services.admin import illiad_templates
from desktop.services.errors import ValidationError
from desktop.services.notices import template_admin
from desktop.services.notices.templates import TemplateFields


def export_template(db: Database, name: str) -> str:
    """One stored template as TOML text, the format of the shipped defaults in ``templates/``.

    Raises:
        NotFoundError: no template has that name.
    """
    record = template_admin.load_template_by_name(db, name)
    return tomli_w.dumps(record.fields.as_dict(), multiline_strings=True)


def read_template_file(path: Path) -> TemplateFields:
    """A template from a TOML file written by :func:`export_template` (or one of ``templates/``).

    Raises:
        ValidationError: the file cannot be read, is not TOML, or has keys a template does not have.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not a TOML template: {exc}") from None
    known = {f.name for f in fields(TemplateFields)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(
            f"{path}: unknown key(s) {', '.join(unknown)}; a template has: {', '.join(sorted(known))}"
        )
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise ValidationError(f"{path}: the template needs a name")
    if any(not isinstance(v, str) for v in data.values()):
        raise ValidationError(f"{path}: every value must be text in quotes")
    return TemplateFields(**data)


def import_template(db: Database, fields_: TemplateFields, changed_by: str) -> template_admin.TemplateRecord:
    """Store ``fields_`` over the template of the same name (checked as the editor checks it).

    Raises:
        NotFoundError: Callslip has no template of that name.
        TemplateValidationError: the template has problems; nothing was saved.
    """
    record = template_admin.load_template_by_name(db, fields_.name)
    return template_admin.save_template(db, record.id, fields_, expected_version=record.version, changed_by=changed_by)


@dataclass
class IllIadTemplateOutcome:
    """What happened to one ILLiad template: imported into ``name``, or not, and every problem to fix."""

    illiad_name: str
    name: str | None
    imported: bool
    problems: list[str]

    def lines(self) -> list[str]:
        """For the command line and the Customization Manager."""
        where = f"→ {self.name}" if self.name else "→ (no Callslip notice)"
        head = f"{self.illiad_name} {where}: {'imported' if self.imported else 'not imported'}"
        return [head, *(f"  problem: {p}" for p in self.problems)]


def import_illiad_templates(
    db: Database, path: Path, changed_by: str, *, dry_run: bool = False
) -> list[IllIadTemplateOutcome]:
    """Convert ILLiad templates (file or folder) and store those Callslip sends; report every problem.

    A converted template that still has problems (a tag kept as text) is stored anyway, since the kept tag is
    visible text that renders, and listed for staff; a template the editor's checks refuse is not stored.

    Raises:
        ValueError: the file or folder holds no readable templates.
    """
    outcomes: list[IllIadTemplateOutcome] = []
    for converted in illiad_templates.read_templates(path):
        outcome = IllIadTemplateOutcome(converted.illiad_name, converted.name, False, list(converted.problems))
        outcomes.append(outcome)
        if converted.name is None:
            continue
        if dry_run:
            problems = template_admin.check_template(
                converted.fields, template_admin.check_contexts(db, converted.name)
            )
            outcome.problems += [str(p) for p in problems]
            continue
        try:
            import_template(db, converted.fields, changed_by)
        except template_admin.TemplateValidationError as exc:
            outcome.problems += [str(p) for p in exc.template_problems]
            continue
        outcome.imported = True
    return outcomes
