"""dagster.yaml files already deployed name `precoro_assets.run_launcher.LocalRunLauncher`: that path still loads
the launcher, which lives in precoro_assets.runtime.run_launcher since the re-layout (issue #29)."""

from dagster._serdes.config_class import ConfigurableClassData


def test_the_old_module_path_of_the_run_launcher_still_loads_it():
    from precoro_assets.runtime.run_launcher import LocalRunLauncher

    data = ConfigurableClassData("precoro_assets.run_launcher", "LocalRunLauncher", "{}\n")
    assert data.rehydrate(LocalRunLauncher).__class__ is LocalRunLauncher
