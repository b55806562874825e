"""Operations on a whole store: ``copy`` between backends, ``verify`` (and repair), scrub."""
