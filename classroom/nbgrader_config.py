"""nbgrader's configuration for the course (see the instructor guide, "Classroom"). Run nbgrader from this folder:

    python -m vitlib.classroom source          # the chapters as assignments, in source/ch00 ... source/ch13
    nbgrader generate_assignment ch05          # release/ch05: the student edition
    nbgrader collect ch05 / nbgrader autograde ch05 / nbgrader generate_feedback ch05 / nbgrader export

The student edition nbgrader makes is the course's own (`vitlib.classroom.student_edition`): the solutions
replaced by a stub, the outputs of exercise cells cleared and every other output kept.
"""

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool
from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearSolutions,
                                    ComputeChecksums, IncludeHeaderFooter, InstantiateTests, LockCells,
                                    SaveCells)

from vitlib.classroom import CODE_STUB, TEXT_STUB, student_cell

c = get_config()  # noqa: F821 (nbgrader's config loader defines it)


class StudentEdition(Preprocessor):
    """vitlib.classroom.student_cell on every cell: what `python -m vitlib.classroom student` does."""

    enabled = Bool(True)    # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        return student_cell(cell), resources


c.CourseDirectory.course_id = "vision-meets-language"
c.ClearSolutions.code_stub = {"python": CODE_STUB}
c.ClearSolutions.text_stub = TEXT_STUB
# nbgrader's own list, with ClearOutput (which would clear every output) replaced by StudentEdition
c.GenerateAssignment.preprocessors = [IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions,
                                      StudentEdition, CheckCellMetadata, ComputeChecksums, SaveCells,
                                      ClearHiddenTests, ClearMarkScheme, ComputeChecksums, CheckCellMetadata]
# a submission that loops forever loses that cell, not the whole class's grading (seconds per cell)
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
