"""Running the project on Azure: Blob checks, shared versions, Azure ML resources."""
