"""The AWS clients' model loading (chalicelib.aws): botocore's own answers, found without listing
every service directory, and the package's cut-down models found first for their services only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

import chalicelib.aws as aws
from tools import package_prep


def _loader() -> Any:
    return aws._loader(botocore.session.get_session())


@pytest.mark.parametrize("service", ["dynamodb", "sts", "kms", "s3"])
@pytest.mark.parametrize("kind", ["service-2", "endpoint-rule-set-1", "paginators-1"])
def test_a_model_is_botocores_own(service: str, kind: str) -> None:
    assert _loader().load_service_model(service, kind) == Loader().load_service_model(service, kind)


def test_a_named_version_is_that_version() -> None:
    model = _loader().load_service_model("sts", "service-2", "2011-06-15")
    assert model["metadata"]["apiVersion"] == "2011-06-15"


def test_an_unknown_service_is_botocores_error() -> None:
    with pytest.raises(UnknownServiceError):
        _loader().load_service_model("no-such-service", "service-2")


def test_no_service_directory_is_listed_but_the_ones_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []
    real = os.listdir

    def listdir(path: Any = ".") -> list[str]:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    loader = _loader()
    loader.load_service_model("dynamodb", "service-2")
    loader.load_service_model("dynamodb", "endpoint-rule-set-1")
    services = {Path(p).name for p in listed if Path(p).parent.name == "data"}
    assert services == {"dynamodb"}


def test_the_packaged_models_serve_their_services_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package_prep.write_models(tmp_path)
    monkeypatch.setattr(aws, "PACKAGED_MODELS", str(tmp_path))
    clients = aws.AwsClients("us-east-1")
    for service, operations in package_prep.MODEL_OPERATIONS.items():
        model = clients.client(service).meta.service_model
        assert tuple(model.operation_names) == operations
        full = Loader().load_service_model(service, "service-2")
        for name in operations:
            # The operation as botocore has it, less its documentation.
            assert model.operation_model(name).input_shape.members.keys() == (
                full["shapes"][full["operations"][name]["input"]["shape"]]["members"].keys()
            )
            assert model.metadata == full["metadata"]
        assert "documentation" not in (tmp_path / service).joinpath(
            model.api_version, "service-2.json").read_text(encoding="utf-8")
    assert len(clients.client("kms").meta.service_model.operation_names) > 20


def test_without_packaged_models_botocore_has_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(aws, "PACKAGED_MODELS", str(tmp_path / "absent"))
    assert len(aws.AwsClients("us-east-1").dynamodb().meta.service_model.operation_names) > 30
