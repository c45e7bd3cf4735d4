from lumos.sandbox import Isolation, isolation_summary, probe_isolation, run_script


def test_probe_matches_a_real_run():
    iso = probe_isolation()
    v = run_script("pass\n")
    assert iso == Isolation(v.network_isolated, v.pid_namespace, v.readonly_fs, v.uid_dropped,
                            bool(v.isolation.get("seccomp")), v.isolation.get("cgroup", "none"),
                            v.isolation.get("seccomp_note", ""), v.isolation.get("cgroup_note", ""))


def test_summary_says_when_missing():
    lines = isolation_summary(Isolation(False, False, False, False))
    assert all("NOT" in line or "no " in line or "same uid" in line or "rlimits only" in line for line in lines)
    lines = isolation_summary(Isolation(True, True, True, True, True, "v2"))
    assert not any("NOT" in line or "rlimits only" in line for line in lines)
