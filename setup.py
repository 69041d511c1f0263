"""Only what pyproject.toml cannot say: templates/ at the top of the repository ships inside the package.

People edit the templates where they are; a wheel installed from a registry has no repository next
to it, so the build copies templates/ to langbuild/templates in the wheel (langbuild.core.resources
looks there first). An editable install keeps reading the repository folder.
"""

import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATES = Path(__file__).resolve().parent / "templates"


class build_py_with_templates(build_py):
    def _template_mapping(self) -> dict[str, str]:
        """Build-folder path -> source path of every template file."""
        if not (TEMPLATES / "project" / "langbuild.toml").is_file():
            # A wheel without templates installs fine and then fails at 'langbuild init': fail here instead.
            raise FileNotFoundError(f"{TEMPLATES} is missing or incomplete; an sdist must include it (MANIFEST.in)")
        return {
            os.path.join(self.build_lib, "langbuild", "templates", *source.relative_to(TEMPLATES).parts): str(source)
            for source in sorted(TEMPLATES.rglob("*"))
            if source.is_file()
        }

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the package is read in place, and finds templates/ next to it
            return
        for target, source in self._template_mapping().items():
            self.mkpath(os.path.dirname(target))
            self.copy_file(source, target)

    def get_output_mapping(self) -> dict[str, str]:
        # Editable installs in strict mode link what this lists, so the templates are part of it too.
        return {**super().get_output_mapping(), **self._template_mapping()}

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:  # already from get_output_mapping
            return outputs
        return [*outputs, *self._template_mapping()]


setup(cmdclass={"build_py": build_py_with_templates})
