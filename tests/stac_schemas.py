"""Validate STAC documents offline: the core schemas pystac ships and the extension schemas as published,
copied into ``../shared/stac-schemas/`` (``<extension>/<version>/schema.json``).

Nothing is fetched: a ``$ref`` to a schema that is neither shipped nor copied is an error, not a download.
Where ``../shared`` is absent (a clone outside this project's CI) the tests that need it skip.
"""

from __future__ import annotations

import json

import pytest

from helpers import ROOT

SHARED = ROOT.parent / "shared" / "stac-schemas"
CORE = {"Feature": "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json",
        "Collection": "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"}


class OfflineSchemas:
    """Schemas by URL, and one draft-07 validator for each."""

    def __init__(self):
        if not SHARED.is_dir():
            pytest.skip(f"{SHARED} is absent: the STAC extension schemas as published are not here to validate "
                        "against (they are shared beside the checkout in this project's CI)")
        from pystac.validation.local_validator import get_local_schema_cache

        self.schemas = dict(get_local_schema_cache())
        for path in sorted(SHARED.glob("*/v*/schema.json")):
            ext, version = path.parent.parent.name, path.parent.name
            self.schemas[f"https://stac-extensions.github.io/{ext}/{version}/schema.json"] = \
                json.loads(path.read_text(encoding="utf-8"))
        self._validators: dict = {}

    def _validator(self, uri: str):
        if uri not in self._validators:
            import jsonschema
            from referencing import Registry, Resource
            from referencing.exceptions import NoSuchResource

            def retrieve(ref: str):
                raise NoSuchResource(ref)  # offline: never fetch

            registry = Registry(retrieve=retrieve).with_resources(
                [(k, Resource.from_contents(v)) for k, v in self.schemas.items()])
            if uri not in self.schemas:
                raise AssertionError(f"no local copy of the schema {uri}")
            self._validators[uri] = jsonschema.Draft7Validator(self.schemas[uri], registry=registry)
        return self._validators[uri]

    def errors(self, doc: dict) -> list[str]:
        """Every failure of ``doc`` against core and each extension it declares (empty: valid)."""
        from jsonschema.exceptions import best_match

        out = []
        for uri in [CORE[doc["type"]], *doc.get("stac_extensions", [])]:
            errors = list(self._validator(uri).iter_errors(doc))
            if errors:  # one line per schema: the error jsonschema judges most relevant (it descends oneOf)
                e = best_match(errors)
                where = "/".join(str(p) for p in e.absolute_path)
                schema = uri.split("/")[-3] if "stac-extensions" in uri else "core"
                out.append(f"{doc.get('id')}: {schema}: {where}: {e.message[:300]}")
        return out

    def catalogue_errors(self, dataset, chips, each=None) -> list[str]:
        """Every failure of a dataset's STAC catalogue (``stac/``: its Collection and the Item of each of
        ``chips``) against core and the extensions it declares; ``each(item)``, if given, asserts more of
        every Item."""
        problems = self.errors(json.loads((dataset / "stac" / "collection.json").read_text()))
        for c in chips:
            item = json.loads((dataset / "stac" / c["id"] / f"{c['id']}.json").read_text())
            if each is not None:
                each(item)
            problems += self.errors(item)
        return problems
