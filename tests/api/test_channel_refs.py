"""``kiln:NAME@CHANNEL`` (and ``NAME@CHANNEL``) is accepted where the API takes an image reference: the
diff's ``against`` resolves to the version the channel points at (the seed puts web@1.0.0/1 in dev)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("against", ["kiln:web@dev", "web@dev", "web@1.0.0/1"])
def test_diff_against_a_channel_reference(client: TestClient, against: str) -> None:
    answer = client.get("/api/v1/images/app/2.0.0/1/diff", params={"against": against})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["old"], answer.json()["new"]) == ("web@1.0.0/1", "app@2.0.0/1")


def test_empty_channel_and_bad_reference(client: TestClient) -> None:
    empty = client.get("/api/v1/images/app/2.0.0/1/diff", params={"against": "kiln:web@prod"})
    assert empty.status_code == 404 and "no image of web in channel prod" in empty.text
    bad = client.get("/api/v1/images/app/2.0.0/1/diff", params={"against": "kiln:web@Prod!"})
    assert bad.status_code == 422
