"""A bucket listing in the local AWS reads one snapshot of the bucket's keys (local_aws/moto_server.py):
moto's own listing looked each copied name up again, and a key deleted in between failed Terraform's
ListObjectVersions with a 500 while it emptied a bucket in parallel (CI, `mlops local down`)."""

from __future__ import annotations

from moto.s3.utils import _VersionedKeyStore

from local_aws import moto_server


class Version:
    def __init__(self, name: str) -> None:
        self.name = name

    def dispose(self) -> None:
        pass


def store_of(*names: str) -> _VersionedKeyStore:
    moto_server._bucket_listings_survive_concurrent_deletes()
    store = _VersionedKeyStore()
    for name in names:
        store[name] = Version(name)
    return store


def test_a_key_deleted_during_a_version_listing_is_listed_as_it_was():
    store = store_of("a", "b", "c")
    listing = store.iterlists()
    first = next(listing)
    store.pop("c")  # another request deletes the last version of "c" meanwhile
    rest = list(listing)
    assert [first[0]] + [name for name, _ in rest] == ["a", "b", "c"]
    assert all(isinstance(versions, list) and versions for _, versions in [first, *rest])
    assert "c" not in store and [name for name, _ in store.iterlists()] == ["a", "b"]


def test_latest_versions_skip_a_key_emptied_meanwhile():
    store = store_of("a", "b")
    store.setlist("b", [])  # moto empties the list before it pops the key
    assert [version.name for version in store.values()] == ["a"]
    assert [name for name, _ in store.items()] == ["a"]
