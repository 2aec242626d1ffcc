"""The DOL spoke: EFAST2 Form 5500 layouts, canonical tables and the nightly import."""
