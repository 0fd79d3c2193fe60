"""The 1v1 game-player reference workload: a small deterministic arena game (`game`), what a
policy sees of it (`features`), scripted players (`players`), matches played move by move
through any bot callable (`matches`), logged play (`logs`), policy training and ONNX export
(`training`), label bundles (`bundle`) and the whole build (`build`)."""
