"""Regenerate .env.example from the Settings class (run after adding a setting)."""

from __future__ import annotations

from pathlib import Path

from guardia.settings import Settings


def render() -> str:
    """Every setting with its default and description."""
    header = "# Every Guardia setting, with its default. Copy to .env and edit; never commit .env."
    lines = [header, ""]
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None or hasattr(default, "get_secret_value"):
            default = ""
        if isinstance(default, bool):
            default = str(default).lower()
        if field.description:
            lines.append(f"# {field.description}")
        lines.append(f"GUARDIA_{name.upper()}={default}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (Path(__file__).resolve().parents[1] / ".env.example").write_text(render())
