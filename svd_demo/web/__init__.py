"""Web: the Gradio app, the only code that imports gradio (an import contract checks it)."""
