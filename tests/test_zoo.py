"""The data-set zoo through the real download code: small fixtures in each data set's exact
published format (separators, encodings, quoting, archive layout), served by a loopback HTTP
server standing in for the official homes ($RECSYS_DATA_MIRROR), checked against the values
written into them."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from recsys import datasets
from recsys.cli import main as cli
from recsys.data import datasets as impl
from recsys.data.download import MANIFEST


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        srv = self.server
        path = urllib.parse.urlsplit(self.path).path.lstrip("/")
        srv.requests.append(path)
        if path not in srv.files:
            self.send_error(404)
            return
        body = srv.files[path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.truncate.get(path)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A loopback mirror of the official homes; the cache is an empty tmp folder."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.truncate, srv.requests = {}, {}, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("RECSYS_DATA_MIRROR", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("RECSYS_DATA_HOME", str(tmp_path / "cache"))
    yield srv
    srv.shutdown()
    srv.server_close()


def _key(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc + parts.path


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _sha(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def publish(srv, monkeypatch, name: str, files: dict[str, bytes], pin: bool = True) -> bytes:
    """Serve ``files`` (archive members by path, or plain files by name) where ``name``'s
    official source lives, packed as the publisher packs them; with ``pin`` the catalogue's
    checksums become the fixture's (the published ones are of the real files)."""
    entry = impl.DATASETS[name]
    source = entry.sources[0]
    if source.archive:
        payload = (_zip if source.archive == "zip" else _tar)(files)
        srv.files[_key(source.url)] = payload
        checksums = {k: None for k in source.checksums}
        source = dataclasses.replace(source, checksums=checksums,
                                     archive_checksum=_sha(payload) if pin else None)
    else:
        for file, content in files.items():
            srv.files[_key(source.url + file)] = content
        source = dataclasses.replace(source, checksums={
            k: _sha(files[k]) if pin else None for k in source.checksums})
        payload = b""
    monkeypatch.setitem(impl.DATASETS, name, dataclasses.replace(entry, sources=(source,)))
    return payload


def _value(data, user, item) -> float:
    return float(data.matrix[data.users.to_index([user])[0], data.items.to_index([item])[0]])


# -- one fixture per format -----------------------------------------------------------------

ML_DAT = b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n" \
         b"3::3408::4::978300275\n"
ML_CSV = b"userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n1,306,3.5,1147868817\n" \
         b"2,296,4.0,1141415820\n7,1,0.5,1147880000\n"


def check_movielens(data, half_stars: bool) -> bool:
    assert data.timestamps is not None and data.shape == (3, 3) and data.nnz == 4
    if half_stars:
        assert _value(data, 1, 306) == 3.5 and _value(data, 7, 1) == 0.5
    else:
        assert _value(data, 1, 1193) == 5 and _value(data, 2, 1193) == 4
    return True


ML_DAT_10M = b"1::122::5::838985046\n1::185::4.5::838983525\n2::122::3::868245777\n" \
             b"3::185::0.5::868244699\n"


FIXTURES = {
    "ml-1m": ({"ml-1m/ratings.dat": ML_DAT,
               "ml-1m/movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                                   "661::James and the Giant Peach (1996)::Animation\n"
                                   "3408::Misérables, Les (1998)::Drama\n".encode("latin-1")},
              lambda d: (check_movielens(d, False),
                         datasets.item_titles("ml-1m").loc[3408] == "Misérables, Les (1998)")),
    "ml-10m": ({"ml-10M100K/ratings.dat": ML_DAT_10M,
                "ml-10M100K/movies.dat": b"122::Boomerang (1992)::Comedy|Romance\n"},
               lambda d: (d.nnz == 4 and _value(d, 1, 185) == 4.5 and _value(d, 3, 185) == 0.5,)),
    "ml-20m": ({"ml-20m/ratings.csv": ML_CSV,
                "ml-20m/movies.csv": b'movieId,title,genres\n296,"American President, The '
                                     b'(1995)",Comedy\n'},
               lambda d: (check_movielens(d, True), datasets.item_titles("ml-20m").loc[296]
                          == "American President, The (1995)")),
    "ml-25m": ({"ml-25m/ratings.csv": ML_CSV, "ml-25m/movies.csv": b"movieId,title,genres\n"},
               lambda d: (check_movielens(d, True),)),
    "ml-32m": ({"ml-32m/ratings.csv": ML_CSV, "ml-32m/movies.csv": b"movieId,title,genres\n"},
               lambda d: (check_movielens(d, True),)),
    "lastfm-1k": (
        {"lastfm-dataset-1K/userid-timestamp-artid-artname-traid-traname.tsv": (
            b"user_000001\t2009-05-04T23:08:57Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep "
            b"Dish\t\tFuck Me Im Famous (Pacha Ibiza)-09-28-2007\n"
            b"user_000001\t2009-05-04T13:54:10Z\t\tCeltic Frost \"live\"\t\tThe Usurper\n"
            b"user_000001\t2009-05-05T13:54:10Z\t\tCeltic Frost \"live\"\t\tCircle\n"
            b"user_000002\t2009-05-04T13:06:09Z\tf1b1cf71-bd35-4e99-8624-24a6e15f133a\tDeep "
            b"Dish\ta7f7df4a-77d8-4f12-8acd-5c60c93f4de8\tMusic\n")},
        lambda d: (d.shape == (2, 2), _value(d, "user_000001", 'name:Celtic Frost "live"') == 2,
                   _value(d, "user_000002", "f1b1cf71-bd35-4e99-8624-24a6e15f133a") == 1,
                   d.timestamps is not None)),
    "lastfm-360k": (
        {"lastfm-dataset-360K/usersha1-artmbid-artname-plays.tsv": (
            "00000c289a1829a808ac09c00daf10bc3c4e223b\t3bd73256-3905-4f3a-97e2-8b341527f805\t"
            "betty blowtorch\t2137\n"
            "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tdie Ärzte\t1099\n"
            "00001411dc427966b17297bf4d69e7e193135d89\t3bd73256-3905-4f3a-97e2-8b341527f805\t"
            "Betty Blowtorch\t12\n").encode()},
        lambda d: (d.nnz == 3, _value(d, "00000c289a1829a808ac09c00daf10bc3c4e223b",
                                      "name:die Ärzte") == 1099,
                   _value(d, "00001411dc427966b17297bf4d69e7e193135d89",
                          "3bd73256-3905-4f3a-97e2-8b341527f805") == 12)),
    "msd-taste": (
        {"train_triplets.txt": b"b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAKIMP12A8C130995"
                               b"\t1\nb80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAPDEY12A81C210A"
                               b"9\t5\n85c1f87fea955d09b4bec2e36aee110927aedf9a\tSOAKIMP12A8C13"
                               b"0995\t2\n"},
        lambda d: (d.shape == (2, 2), _value(d, "b80344d063b5ccb3212f76538f3d9e43d87dca9e",
                                             "SOAPDEY12A81C210A9") == 5)),
    "book-crossing": (
        {"BX-Book-Ratings.csv": ('"User-ID";"ISBN";"Book-Rating"\r\n"276725";"034545104X";"0"'
                                 '\r\n"276726";"0155061224";"5"\r\n"276727";"0446520802";"0"\r\n'
                                 '"276729";"052165615X";"3"\r\n"276729";"0521795028";"6"\r\n'
                                 '"276744";"038550120X";"7"\r\n"11676";"\\"0393045218\\"";"9"'
                                 '\r\n').encode("latin-1")},
        lambda d: (d.nnz == 5, _value(d, 276726, "0155061224") == 5,
                   _value(d, 11676, '"0393045218"') == 9,
                   "034545104X" not in d.items.raw_ids.tolist())),
    "citeulike-a": ({"users.dat": b"3 0 1 2\n2 2 5\n1 4\n"},
                    lambda d: (d.shape == (3, 5), d.nnz == 6, _value(d, 1, 5) == 1)),
    "yelp2018-lightgcn": ({"train.txt": b"0 0 1 2\n1 2 3\n2 1\n", "test.txt": b"0 3\n1 0\n2 4\n"},
                          lambda d: (d.train.shape == (3, 5), d.test.nnz == 3,
                                     d.train.nnz == 6)),
    "amazon-book-lightgcn": ({"train.txt": b"0 0 1\n1 1 2\n", "test.txt": b"0 2\n1 0\n"},
                             lambda d: (d.train.shape == (2, 3), d.test.nnz == 2)),
    "amazon-2018-video-games": (
        {"Video_Games_5.json.gz": gzip.compress("\n".join(json.dumps(r) for r in [
            {"overall": 5.0, "verified": True, "reviewTime": "10 17, 2015",
             "reviewerID": "A1HP7NVNPFMA4N", "asin": "0700026657", "reviewerName": "Ambrosia",
             "reviewText": "This game is a bit hard to get the hang of", "summary": "but when "
             "you do it's great.", "unixReviewTime": 1445040000},
            {"overall": 4.0, "reviewerID": "A1JGAP0185YJI6", "asin": "0700026657",
             "style": {"Format:": " Video Game"}, "unixReviewTime": 1437955200},
            {"overall": 2.0, "reviewerID": "A1HP7NVNPFMA4N", "asin": "0700026657",
             "unixReviewTime": 1446040000},  # a repeated review: the latest is kept
        ]).encode())},
        lambda d: (d.nnz == 2, _value(d, "A1HP7NVNPFMA4N", "0700026657") == 2.0)),
    "amazon-2023-video-games": (
        {"Video_Games.csv.gz": gzip.compress(
            b"user_id,parent_asin,rating,timestamp\nAGCI7FAH4GL5FI65HYLKWTMFZ2CQ,B07DJWBYKP,"
            b"4.0,1531785353545\nAGCI7FAH4GL5FI65HYLKWTMFZ2CQ,B00ZQB28XK,5.0,1531785362981\n"
            b"AHKK2FA3IRMKFA5HF3NSOPJSMFQQ,B07DJWBYKP,1.0,1540000000000\n")},
        lambda d: (d.nnz == 3, int(d.timestamps.max()) == 1540000000,
                   _value(d, "AHKK2FA3IRMKFA5HF3NSOPJSMFQQ", "B07DJWBYKP") == 1.0)),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_loader_parses_its_exact_format_through_the_download_path(server, monkeypatch, name):
    files, check = FIXTURES[name]
    publish(server, monkeypatch, name, files)
    data = datasets.load(name, show_progress=False)
    assert all(check(data))
    datasets.verify(name)
    n_requests = len(server.requests)
    again = datasets.load(name)  # the cache answers: no request
    assert len(server.requests) == n_requests
    first = data.train if hasattr(data, "train") else data
    second = again.train if hasattr(again, "train") else again
    assert (first.matrix != second.matrix).nnz == 0


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_data_describe_on_every_loader(server, monkeypatch, capsys, name):
    files, _ = FIXTURES[name]
    publish(server, monkeypatch, name, files)
    assert cli(["data", "describe", "--dataset", name, "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"]["interactions"] >= 2 and "split" in out


def _cache_is_empty(tmp_path, name) -> bool:
    root = tmp_path / "cache"
    folder = root / impl.DATASETS[name].folder
    return not folder.exists() and not any(p.name.startswith(".") for p in
                                           folder.parent.glob("*")) if root.exists() else True


def test_checksum_mismatch_is_a_clear_error_and_caches_nothing(server, monkeypatch, tmp_path):
    files, _ = FIXTURES["ml-1m"]
    payload = publish(server, monkeypatch, "ml-1m", files)
    corrupt = payload[:-1] + bytes([payload[-1] ^ 1])
    server.files[_key(impl.DATASETS["ml-1m"].sources[0].url)] = corrupt
    with pytest.raises(FileNotFoundError, match="checksum mismatch.*Nothing was written"):
        datasets.load("ml-1m")
    assert _cache_is_empty(tmp_path, "ml-1m")
    # a pinned member checksum (ml-32m's ratings.csv, from its checksums.txt) is checked too
    files, _ = FIXTURES["ml-32m"]
    publish(server, monkeypatch, "ml-32m", files, pin=False)
    entry = impl.DATASETS["ml-32m"]
    source = dataclasses.replace(entry.sources[0], checksums={
        "ratings.csv": "md5:" + "0" * 32, "movies.csv": None})
    monkeypatch.setitem(impl.DATASETS, "ml-32m", dataclasses.replace(entry, sources=(source,)))
    with pytest.raises(FileNotFoundError, match="checksum mismatch for ratings.csv"):
        datasets.load("ml-32m")
    assert _cache_is_empty(tmp_path, "ml-32m")
    # a plain file (no archive), checked while it streams
    files, _ = FIXTURES["citeulike-a"]
    publish(server, monkeypatch, "citeulike-a", files)
    server.files[_key(impl.DATASETS["citeulike-a"].sources[0].url + "users.dat")] = b"1 0\n"
    with pytest.raises(FileNotFoundError, match="checksum mismatch for users.dat"):
        datasets.load("citeulike-a")
    assert _cache_is_empty(tmp_path, "citeulike-a")


def test_interrupted_download_leaves_nothing_half_written(server, monkeypatch, tmp_path):
    files, _ = FIXTURES["yelp2018-lightgcn"]
    publish(server, monkeypatch, "yelp2018-lightgcn", files)
    url = impl.DATASETS["yelp2018-lightgcn"].sources[0].url
    server.truncate[_key(url + "test.txt")] = 5
    with pytest.raises(FileNotFoundError, match="interrupted"):
        datasets.load("yelp2018-lightgcn")
    assert _cache_is_empty(tmp_path, "yelp2018-lightgcn")
    files, _ = FIXTURES["lastfm-1k"]
    payload = publish(server, monkeypatch, "lastfm-1k", files)
    server.truncate[_key(impl.DATASETS["lastfm-1k"].sources[0].url)] = len(payload) // 2
    with pytest.raises(FileNotFoundError, match="interrupted"):
        datasets.load("lastfm-1k")
    assert _cache_is_empty(tmp_path, "lastfm-1k")
    server.truncate.clear()  # the next attempt succeeds from scratch
    assert datasets.load("lastfm-1k").nnz == 3


def test_unpublished_checksum_is_recorded_then_enforced(server, monkeypatch, tmp_path, caplog):
    files, _ = FIXTURES["citeulike-a"]
    publish(server, monkeypatch, "citeulike-a", files, pin=False)
    with caplog.at_level("WARNING"):
        datasets.load("citeulike-a")
    assert "no published checksum" in caplog.text
    folder = tmp_path / "cache" / "citeulike_a"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["files"]["users.dat"] == _sha(files["users.dat"])
    datasets.verify("citeulike-a")
    (folder / "users.dat").write_bytes(b"1 0\n")
    with pytest.raises(OSError, match="users.dat does not match"):
        datasets.verify("citeulike-a")


def test_wrong_archive_or_format_is_named(server, monkeypatch):
    publish(server, monkeypatch, "ml-25m", {"ml-25m/ratings.csv": b"a,b\n1,2\n",
                                            "ml-25m/movies.csv": b""})
    with pytest.raises(ValueError, match="expected the columns"):
        datasets.load("ml-25m")
    publish(server, monkeypatch, "ml-20m", {"ml-20m/other.csv": b""})
    with pytest.raises(FileNotFoundError, match="holds 0 members named ratings.csv"):
        datasets.load("ml-20m")
    publish(server, monkeypatch, "citeulike-a", {"users.dat": b"3 0 1\n"})
    with pytest.raises(ValueError, match="announces 3 articles, lists 2"):
        datasets.load("citeulike-a")


def test_mirror_404_is_offline_error(server):
    with pytest.raises(FileNotFoundError, match="could not be downloaded.*offline"):
        datasets.load("msd-taste")


def test_catalogue_lists_every_set_with_source_and_licence():
    table = datasets.datasets()
    assert len(table) >= 15 and table["name"].is_unique
    assert table["licence"].str.len().min() > 10 and table["url"].str.match("https?://").all()
    for name in ("ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "lastfm-1k", "lastfm-360k",
                 "msd-taste", "amazon-2018-books", "amazon-2023-books", "book-crossing",
                 "citeulike-a", "yelp2018-lightgcn", "amazon-book-lightgcn"):
        assert name in set(table["name"]) and name in FIXTURES or name.endswith("books")
    with pytest.raises(ValueError, match="amazon-2023-<category>"):
        datasets.load("netflix")


def test_data_readme_lists_every_set():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "data" / "README.md").read_text()
    for row in datasets.datasets().itertuples():
        if not row.name.startswith("amazon-20"):
            assert f"`{row.name}`" in text, row.name
    assert "amazon-2018-<category>" in text and "amazon-2023-<category>" in text


def test_hetrec_header_line_is_stripped_before_its_checksum(server, data_home):
    source = impl.DATASETS["lastfm-hetrec"].sources[0]
    shared = (data_home / "lastfm_hetrec2011" / "user_artists.dat").read_bytes()
    server.files[_key(source.url)] = _zip({"user_artists.dat": b"userID\tartistID\tweight\r\n"
                                           + shared})
    assert datasets.load("lastfm-hetrec").nnz == 92_834


def test_ml100k_download_keeps_the_member_checksums(server, data_home, tmp_path):
    """ml-100k's published checksums are of the extracted files: checked member by member."""
    source = impl.DATASETS["ml-100k"].sources[0]
    members = {f"ml-100k/{n}": (data_home / "ml-100k" / n).read_bytes() for n in source.files}
    server.files[_key(source.url)] = _zip(members)
    data = datasets.load("ml-100k")
    assert data.nnz == 100_000 and np.array_equal(
        data.matrix.toarray(), datasets.load("ml-100k", data_home=data_home).matrix.toarray())
    members["ml-100k/u1.base"] = members["ml-100k/u1.base"][:-10]
    server.files[_key(source.url)] = _zip(members)
    with pytest.raises(FileNotFoundError, match="checksum mismatch for u1.base"):
        datasets.load("ml-100k", data_home=tmp_path / "other")
    assert not (tmp_path / "other" / "ml-100k").exists()
