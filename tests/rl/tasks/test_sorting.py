from lumos.rl.tasks import get_task
from lumos.rl.tasks.base import Problem


def test_sorting_verifier():
    t = get_task("sorting", length=5)
    p = Problem("sort 31,4,17:", [4, 17, 31], {"numbers": [31, 4, 17]})
    rs = t.score([p] * 4, ["4,17,31", "4,31,17", "4, 17, 31", "4,17"])
    assert [r.correct for r in rs] == [True, False, False, False]
    assert [r.format for r in rs] == [1.0, 1.0, 0.0, 1.0]
    assert rs[1].info["is_permutation"] and not rs[3].info["is_permutation"]
    ps = t.generate(20, 0)
    assert all(2 <= len(q.meta["numbers"]) <= 5 for q in ps)
    assert all(r.correct for r in t.score(ps, [t.demonstration(q) for q in ps]))
